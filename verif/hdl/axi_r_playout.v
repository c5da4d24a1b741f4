// Testbench only (not product RTL): plays out the R beats of one AXI4 read channel from a
// FIFO that the Python responder (verif/axi_read_responder.py) fills one whole burst at a
// time, so that no Python runs per R beat.
//
// Timing is the Python responder's, cycle for cycle (docs/verification.md):
//   * a burst is pushed in the cycle after its AR handshake (push_tog flips; captured at the
//     edge ending that cycle); its first beat may not be presented before that cycle + extra,
//     nor before the cycle after the previous handshake + extra (the responder waits `extra`
//     cycles once a burst is at the head of its queue);
//   * a beat then waits for its data: `released` counts, in channel order, the beats whose
//     DRAM transaction has returned, written by the DRAM target in the cycle the data returns,
//     so a beat released in a cycle is presented in that cycle (rvalid is combinational);
//   * then it waits its R gap (cycles with rvalid low, drawn by the responder);
//   * then it is held until RREADY.
// Beat data comes from the file axi_r_playout_<CH>.bin that the responder appends each burst
// to before flipping push_tog: the burst's bytes reversed, so that $fread (first byte into the
// most significant one) reads the last beat first, each beat little-endian as on the bus.
// The file is opened at the first push after reset (closed at reset: each test's responder
// writes a new one).
// Every handshake is stamped with `cyc` into `log` (the last MAX_BURST handshakes, newest in
// the low word); `done` counts completed bursts and `first` is the first handshake of the
// last one: the responder wakes once per burst to read them.
module axi_r_playout #(
    parameter integer DW         = 256,
    parameter integer CH         = 0,   // channel number: names the data file (0..9)
    parameter integer DEPTH_LOG2 = 8    // beat slots: 16 outstanding bursts of 16 beats
) (
    input  wire            clk,
    input  wire            rst_n,
    input  wire [31:0]     cyc,         // cycle counter shared by every channel
    // burst push: a new burst whenever push_tog differs from the last one captured
    input  wire            push_tog,
    input  wire [4:0]      push_beats,  // 1..16
    input  wire [15:0]     push_extra,
    input  wire [31:0]     push_resp,   // beat i in bits [2i+1:2i]
    input  wire [255:0]    push_gap,    // beat i in bits [16i+15:16i]
    input  wire [15:0]     released,    // beats with their data back (wrapping)
    // AR gating: the responder's arready, held back while max_outstanding bursts are in
    // flight (AR taken, last beat not yet); a burst's slot is free in the cycle after its
    // last beat, which the responder could only learn after that cycle's edge
    input  wire            arvalid,
    input  wire            arready_tb,
    output wire            arready,
    input  wire [4:0]      max_outstanding,
    // R channel towards the master
    output wire            rvalid,
    input  wire            rready,
    output wire [DW-1:0]   rdata,
    output wire [1:0]      rresp,
    output wire            rlast,
    // completions
    output reg  [15:0]     done,        // bursts completed (wrapping)
    output reg  [31:0]     first,       // first handshake cycle of the last completed burst
    output reg  [511:0]    log          // handshake cycles, newest in [31:0]
);
    localparam integer DEPTH = 1 << DEPTH_LOG2;
    localparam [8*19-1:0] FILE_NAME = {"axi_r_playout_", 8'd48 + CH[7:0], ".bin"};

    reg [DW-1:0]    data_mem  [0:DEPTH-1];
    reg [1:0]       resp_mem  [0:DEPTH-1];
    reg [15:0]      gap_mem   [0:DEPTH-1];
    reg [15:0]      extra_mem [0:DEPTH-1];
    reg [31:0]      nb_mem    [0:DEPTH-1];   // first beats: push cycle + extra
    reg [DEPTH-1:0] first_mem;
    reg [DEPTH-1:0] last_mem;

    reg [DEPTH_LOG2:0] wr_ptr, rd_ptr;
    reg [15:0]         consumed;             // handshakes so far (wrapping, like released)
    reg [31:0]         free_from;            // the cycle after the last handshake
    reg [15:0]         waited;               // cycles the head has been ready but held back
    reg [31:0]         burst_first;          // first handshake of the burst being played
    reg                seen_tog;
    reg [4:0]          inflight;             // AR handshakes minus completed bursts

    wire [DEPTH_LOG2-1:0] head = rd_ptr[DEPTH_LOG2-1:0];
    wire        present   = (wr_ptr != rd_ptr) && (released != consumed);
    wire        is_first  = first_mem[head];
    wire [31:0] after_hs  = free_from + {16'd0, extra_mem[head]};
    wire [31:0] start_at  = !is_first ? free_from :
                            (after_hs > nb_mem[head]) ? after_hs : nb_mem[head];
    wire        eligible  = present && (cyc >= start_at);
    wire        handshake = rvalid && rready;

    assign arready = arready_tb && (inflight < max_outstanding);
    wire   ar_hs   = arvalid && arready;
    wire   r_done  = handshake && last_mem[head];

    assign rvalid = eligible && (waited >= gap_mem[head]);
    assign rdata  = data_mem[head];
    assign rresp  = resp_mem[head];
    assign rlast  = last_mem[head];

    // Testbench file I/O: the file handle and the beat being read are blocking temporaries.
    /* verilator lint_off BLKSEQ */
    /* verilator lint_off PROCASSINIT */
    integer fd = 0;
    integer i;
    integer got;
    reg [DW-1:0]         beat;
    reg [DEPTH_LOG2-1:0] slot;

    always @(posedge clk) begin
        if (!rst_n) begin
            wr_ptr    <= 0;
            rd_ptr    <= 0;
            consumed  <= 16'd0;
            free_from <= 32'd0;
            waited    <= 16'd0;
            // The pin keeps its level across tests (and is X before anything drove it).
            seen_tog  <= (push_tog === 1'b1);
            done      <= 16'd0;
            first     <= 32'd0;
            log       <= 512'd0;
            inflight  <= 5'd0;
            if (fd != 0) begin  // a new test: the responder writes a new file
                $fclose(fd);
                fd = 0;
            end
        end else begin
            if (push_tog != seen_tog) begin
                seen_tog <= push_tog;
                if (fd == 0) begin
                    fd = $fopen(FILE_NAME, "rb");
                    if (fd == 0) begin
                        $display("axi_r_playout: cannot open %0s", FILE_NAME);
                        $finish;
                    end
                end
                for (i = 15; i >= 0; i = i - 1) begin
                    if (i < {27'd0, push_beats}) begin
                        got = $fread(beat, fd);
                        if (got != DW / 8) begin
                            $display("axi_r_playout: %0s ended early", FILE_NAME);
                            $finish;
                        end
                        slot = wr_ptr[DEPTH_LOG2-1:0] + i[DEPTH_LOG2-1:0];
                        data_mem[slot]  <= beat;
                        resp_mem[slot]  <= push_resp[2*i +: 2];
                        gap_mem[slot]   <= push_gap[16*i +: 16];
                        extra_mem[slot] <= push_extra;
                        nb_mem[slot]    <= cyc + {16'd0, push_extra};
                        first_mem[slot] <= (i == 0);
                        last_mem[slot]  <= (i + 1 == {27'd0, push_beats});
                    end
                end
                wr_ptr <= wr_ptr + {{(DEPTH_LOG2 - 4){1'b0}}, push_beats};
            end
            if (ar_hs && !r_done)
                inflight <= inflight + 5'd1;
            else if (r_done && !ar_hs)
                inflight <= inflight - 5'd1;
            if (handshake) begin
                rd_ptr    <= rd_ptr + 1'b1;
                consumed  <= consumed + 16'd1;
                free_from <= cyc + 32'd1;
                waited    <= 16'd0;
                log       <= {log[479:0], cyc};
                if (is_first)
                    burst_first <= cyc;
                if (last_mem[head]) begin
                    done  <= done + 16'd1;
                    first <= is_first ? cyc : burst_first;
                end
            end else if (eligible && waited != 16'hffff) begin
                waited <= waited + 16'd1;
            end
        end
    end
    /* verilator lint_on PROCASSINIT */
    /* verilator lint_on BLKSEQ */
endmodule
