// Bare Verilator harness of spatten_core: the simulator's speed limit for this RTL.
//
// No Python and no DPI: it reads a job file that `spatten_dv.bench.jobfile` writes (packed
// descriptors, the expected packed results with a mask of the compared bits, and the DRAM
// image the jobs read), drives the descriptors back to back, answers AXI reads from a
// fixed-latency memory, takes every result (res_ready always high), checks it bit for bit
// against the expected one and prints one JSON line: jobs, mismatches, cycles, wall seconds,
// cycles per second.
//
// AXI rules kept (docs/architecture.md section 2.2): ARSIZE = bus width, ARBURST = INCR,
// ARLEN + 1 <= 16, no burst across 4 KiB, bursts answered in order, at most MAX_OUTSTANDING
// accepted and not yet returned. The first beat of a burst is offered `latency` cycles after
// its AR handshake (and never before the previous burst's last beat), then one beat per cycle
// while RREADY is high.
//
// Job file (text): "spatten-bare-jobs 1", then "latency N", "cycles_bit B" (bit offset of the
// result's cycles field), "region BASE_HEX NBYTES" (followed by the binary bytes in
// FILE.bin at the running offset), and one "job DESC_HEX EXPECTED_HEX MASK_HEX" per job.

#include <chrono>
#include <cinttypes>
#include <ctime>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "Vspatten_core.h"
#include "verilated.h"

namespace {

constexpr int MAX_OUTSTANDING = 16;
constexpr int MAX_BURST = 16;

struct Region {
    uint64_t base;
    std::vector<uint8_t> data;
};

struct Job {
    std::vector<uint32_t> desc, expect, mask;
};

struct Burst {
    uint64_t addr;
    int beats;
    int sent = 0;
    uint64_t ready_cycle;
};

[[noreturn]] void fail(const std::string& msg) {
    std::fprintf(stderr, "spatten_bare: error: %s\n", msg.c_str());
    std::exit(2);
}

// Little-endian 32-bit words of a hex number (most significant digit first).
std::vector<uint32_t> hex_words(const std::string& hex, size_t nwords) {
    std::vector<uint32_t> w(nwords, 0);
    size_t bit = 0;
    for (size_t i = hex.size(); i-- > 0; bit += 4) {
        char c = hex[i];
        uint32_t v;
        if (c >= '0' && c <= '9') v = c - '0';
        else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
        else fail("bad hex digit in job file");
        if (v == 0) continue;
        if (bit / 32 >= nwords) fail("a hex value is wider than its port");
        w[bit / 32] |= v << (bit % 32);
    }
    return w;
}

template <typename Wide>
constexpr size_t words_of(const Wide&) {
    return sizeof(Wide) / sizeof(uint32_t);
}

class Memory {
  public:
    std::vector<Region> regions;
    void read(uint64_t addr, uint8_t* out, size_t n) const {
        std::memset(out, 0, n);
        for (const Region& r : regions) {
            uint64_t lo = std::max(addr, r.base), hi = std::min(addr + n, r.base + r.data.size());
            if (lo < hi) std::memcpy(out + (lo - addr), r.data.data() + (lo - r.base), hi - lo);
        }
    }
};

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) fail("usage: spatten_bare JOBFILE [LATENCY]");
    std::string path = argv[1];
    std::ifstream in(path);
    if (!in) fail("cannot open " + path);
    std::ifstream bin(path + ".bin", std::ios::binary);
    std::string line, word;
    std::getline(in, line);
    if (line.rfind("spatten-bare-jobs 1", 0) != 0) fail(path + ": not a bare job file");

    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(argc, argv);
    auto top = std::make_unique<Vspatten_core>(ctx.get());
    const size_t desc_words = words_of(top->desc_data);
    const size_t res_words = words_of(top->res_data);
    const size_t beat_words = words_of(top->m_axi_rdata);
    const size_t beat_bytes = beat_words * 4;

    uint64_t latency = 20;
    int cycles_bit = -1;
    Memory mem;
    std::vector<Job> jobs;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        ls >> word;
        if (word == "latency") {
            ls >> latency;
        } else if (word == "cycles_bit") {
            ls >> cycles_bit;
        } else if (word == "region") {
            std::string base_hex;
            size_t n;
            ls >> base_hex >> n;
            Region r{std::strtoull(base_hex.c_str(), nullptr, 16), std::vector<uint8_t>(n)};
            if (!bin.read(reinterpret_cast<char*>(r.data.data()), n))
                fail(path + ".bin: shorter than its regions");
            mem.regions.push_back(std::move(r));
        } else if (word == "job") {
            std::string d, e, m;
            ls >> d >> e >> m;
            jobs.push_back({hex_words(d, desc_words), hex_words(e, res_words),
                            hex_words(m, res_words)});
        } else if (!word.empty() && word[0] != '#') {
            fail(path + ": unknown line '" + word + "'");
        }
    }
    if (argc > 2) latency = std::strtoull(argv[2], nullptr, 10);

    // reset: 3 cycles low
    top->clk = 0;
    top->rst_n = 0;
    top->eval();
    for (int i = 0; i < 3; ++i) {
        top->clk = 1; top->eval();
        top->clk = 0; top->eval();
    }
    top->rst_n = 1;
    top->res_ready = 1;

    std::deque<Burst> bursts;
    size_t next_desc = 0, next_res = 0, mismatches = 0;
    uint64_t cycle = 0, job_cycles = 0;
    const uint64_t limit = 2000000ull * (jobs.size() + 1);  // a hung core fails, never hangs
    std::vector<uint8_t> beat(beat_bytes);
    auto t0 = std::chrono::steady_clock::now();
    std::clock_t cpu0 = std::clock();
    while (next_res < jobs.size()) {
        // ---- drive this cycle's inputs (from state after the previous edge), settle
        top->desc_valid = next_desc < jobs.size();
        if (next_desc < jobs.size())
            for (size_t i = 0; i < desc_words; ++i) top->desc_data[i] = jobs[next_desc].desc[i];
        top->m_axi_arready = bursts.size() < MAX_OUTSTANDING;
        bool rvalid = !bursts.empty() && bursts.front().ready_cycle <= cycle;
        top->m_axi_rvalid = rvalid;
        if (rvalid) {
            const Burst& b = bursts.front();
            mem.read(b.addr + uint64_t(b.sent) * beat_bytes, beat.data(), beat_bytes);
            for (size_t i = 0; i < beat_words; ++i)
                std::memcpy(&top->m_axi_rdata[i], &beat[4 * i], 4);
            top->m_axi_rlast = b.sent == b.beats - 1;
            top->m_axi_rresp = 0;
        }
        top->clk = 0;
        top->eval();
        // ---- sample the handshakes the coming edge completes
        bool desc_fire = top->desc_valid && top->desc_ready;
        bool ar_fire = top->m_axi_arvalid && top->m_axi_arready;
        bool r_fire = rvalid && top->m_axi_rready;
        bool res_fire = top->res_valid && top->res_ready;
        uint64_t ar_addr = top->m_axi_araddr;
        int ar_beats = top->m_axi_arlen + 1;
        int ar_size = top->m_axi_arsize, ar_burst = top->m_axi_arburst;
        std::vector<uint32_t> res;
        if (res_fire) res.assign(&top->res_data[0], &top->res_data[0] + res_words);
        top->clk = 1;
        top->eval();
        ++cycle;
        // ---- bookkeeping of what the edge transferred
        if (desc_fire) ++next_desc;
        if (ar_fire) {
            if ((1u << ar_size) != beat_bytes) fail("ARSIZE is not the bus width");
            if (ar_burst != 1) fail("ARBURST is not INCR");
            if (ar_beats > MAX_BURST) fail("ARLEN + 1 exceeds MAX_BURST");
            if (ar_addr / 4096 != (ar_addr + ar_beats * beat_bytes - 1) / 4096)
                fail("a burst crosses a 4 KiB boundary");
            uint64_t ready = cycle - 1 + latency;  // AR in cycle c: first beat in c + latency
            if (!bursts.empty()) ready = std::max(ready, bursts.back().ready_cycle);
            bursts.push_back({ar_addr, ar_beats, 0, ready});
        }
        if (r_fire) {
            Burst& b = bursts.front();
            if (++b.sent == b.beats) {
                bursts.pop_front();
                if (!bursts.empty()) bursts.front().ready_cycle =
                    std::max(bursts.front().ready_cycle, cycle);
            }
        }
        if (res_fire) {
            const Job& j = jobs[next_res];
            bool bad = false;
            for (size_t i = 0; i < res_words; ++i)
                if ((res[i] ^ j.expect[i]) & j.mask[i]) bad = true;
            if (cycles_bit >= 0) {
                uint64_t c = 0;
                for (int b = 0; b < 32; ++b) {
                    int bit = cycles_bit + b;
                    c |= uint64_t((res[bit / 32] >> (bit % 32)) & 1u) << b;
                }
                job_cycles += c;
            }
            if (bad) {
                if (mismatches < 5) std::fprintf(stderr, "spatten_bare: job %zu: result differs "
                                                 "from the model\n", next_res);
                ++mismatches;
            }
            ++next_res;
        }
        if (cycle > limit) fail("timeout: the core stopped returning results");
    }
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double cpu = double(std::clock() - cpu0) / CLOCKS_PER_SEC;
    top->final();
    std::printf("{\"jobs\": %zu, \"mismatches\": %zu, \"cycles\": %" PRIu64
                ", \"job_cycles\": %" PRIu64 ", \"latency\": %" PRIu64
                ", \"wall_s\": %.4f, \"cycles_per_s\": %.0f, \"cpu_s\": %.4f"
                ", \"cycles_per_cpu_s\": %.0f}\n",
                jobs.size(), mismatches, cycle, job_cycles, latency, wall, cycle / wall, cpu,
                cycle / cpu);
    return mismatches ? 1 : 0;
}
