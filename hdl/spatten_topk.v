// SpAtten top-k engine: quick-select over up to L_MAX unsigned values (docs/architecture.md,
// section 6; reference models/topk.py: topk_indices, topk_threshold).
//
// Selects the k largest of n values (ties: the lower index wins) and streams the selected
// indices in ascending order. k = 0 or n = 0 selects nothing; k >= n selects all (no pass).
//
// Interface (one clock `clk`, synchronous active-low reset `rst_n`):
//   Load:   load_valid, load_index, load_value write value[load_index] into the engine's own
//           value RAM, one value per cycle. Ignored while `busy`. Values persist across runs.
//           LOAD_LANES > 1 (a multi-lane softmax's probabilities): a cycle writes load_count
//           (1..LOAD_LANES) values, value j (load_value[j*VALUE_BITS +: VALUE_BITS]) to index
//           load_index + j, at any load_index (LOAD_LANES <= TOPK_CMPS consecutive indices
//           always fall in distinct lane RAMs: a load that crosses a row of the value RAM
//           writes the lanes before load_index mod TOPK_CMPS in the next row; the core's
//           prune scans load unaligned beats). At LOAD_LANES = 1 load_count is ignored (tie
//           it to 1).
//   Start:  `start` (one cycle, sampled only while !busy) with n (0..L_MAX; larger is clamped
//           to L_MAX) and k. `busy` is high from the next cycle through the `done` cycle.
//           A load in the start cycle itself is still taken.
//   Output: out_valid/out_ready/out_index/out_last, a valid/ready stream of the selected
//           indices in ascending order; out_last marks the final index (the min(k,n)-th).
//           The stream holds out_valid/out_index/out_last stable until out_ready.
//   Done:   `done` pulses the cycle after the last beat is accepted (or, for an empty
//           selection, n = 0 or k = 0, the cycle after start, with no beat at all and so no
//           out_last). From then until the next start: thr = k-th largest value and
//           ties = k - g (g = number of values > thr; the set is every value > thr plus the
//           first `ties` values == thr) exactly as topk_threshold(); when no pass ran (k = 0,
//           n = 0, k >= n) thr = 0 and ties = 0. passes = number of partition passes,
//           cycles = cycles of the select phase (sum of all pass lengths).
//   Pass monitor: pass_valid pulses in the last cycle of every partition pass, with pass_m =
//           candidates m of that pass and pass_cycles = its length in cycles.
//
// Engine: value RAM V = TOPK_CMPS lane RAMs (lane = index mod TOPK_CMPS, row = index div
// TOPK_CMPS) plus three candidate RAMs M0..M2 of L_MAX/TOPK_CMPS rows of TOPK_CMPS values.
// A partition pass reads one row (TOPK_CMPS candidates) per cycle from its source RAM (V for
// the first pass), compares every valid lane with the pivot, and two stage writers compact the
// > pivot and < pivot values into the two candidate RAMs that are not the source (== pivot
// values are only counted). Then:  k_rem <= G: continue in the > partition;
// k_rem <= G + E: thr = pivot, ties = k_rem - G, done;  else k_rem -= G + E, continue in the
// < partition. Every pass removes at least the pivot, so the search ends.
// Pivot rule (deterministic): value[0] for the first pass; after that, the `sample` of the
// partition chosen by the previous pass (spatten_topk_stage: a value from the later half of
// the partition's order, the writers keeping index order), so a sorted or nearly sorted input
// still loses about half of its candidates per pass instead of one.
// Pass timing, m candidates, R = ceil(m/TOPK_CMPS): cycle 0 issues the read of row 0,
// rows are read in cycles 0..R-1, compared in 1..R (registered), compacted and written in
// 2..R+1, and cycle R+2 writes the partial rows and decides: R + 3 cycles per pass, which is
// the upstream latency formula ceil(m/TOPK_CMPS) + 3. The next pass starts the cycle after.
// Final (emit) pass: for each row of V (read 1 cycle, mask 1 cycle) the selected lanes are
// streamed lowest first, one per cycle; the pass stops after the last selected index.
module spatten_topk #(
    parameter integer L_MAX      = 1024,  // power of two
    parameter integer VALUE_BITS = 32,
    parameter integer TOPK_CMPS  = 16,    // power of two, 2 .. L_MAX/2
    parameter integer LOAD_LANES = 1      // values per load cycle: power of two <= TOPK_CMPS
) (
    input  wire                      clk,
    input  wire                      rst_n,
    // load
    input  wire                      load_valid,
    input  wire [$clog2(L_MAX)-1:0]  load_index,
    input  wire [LOAD_LANES*VALUE_BITS-1:0] load_value,
    input  wire [$clog2(LOAD_LANES+1)-1:0]  load_count,
    // command
    input  wire                      start,
    input  wire [$clog2(L_MAX):0]    n,
    input  wire [$clog2(L_MAX):0]    k,
    output wire                      busy,
    // index stream
    output wire                      out_valid,
    input  wire                      out_ready,
    output wire [$clog2(L_MAX)-1:0]  out_index,
    output wire                      out_last,
    // result
    output wire                      done,
    output reg  [VALUE_BITS-1:0]     thr,
    output reg  [$clog2(L_MAX):0]    ties,
    output reg  [$clog2(L_MAX):0]    passes,
    output reg  [31:0]               cycles,
    // pass monitor
    output wire                      pass_valid,
    output wire [$clog2(L_MAX):0]    pass_m,
    output wire [$clog2(L_MAX):0]    pass_cycles
);
    localparam integer C    = TOPK_CMPS;
    localparam integer VB   = VALUE_BITS;
    localparam integer IW   = $clog2(L_MAX);   // index bits
    localparam integer NW   = IW + 1;          // count bits (0..L_MAX)
    localparam integer LW   = $clog2(C);       // lane bits
    localparam integer RW   = IW - LW;         // row address bits
    localparam integer ROWS = L_MAX / C;
    localparam integer RDW  = C * VB;          // row data bits

    localparam [2:0] S_IDLE   = 3'd0,
                     S_PASS   = 3'd1,
                     S_E_RD   = 3'd2,
                     S_E_MASK = 3'd3,
                     S_E_OUT  = 3'd4,
                     S_DONE   = 3'd5;
    localparam [1:0] SRC_V = 2'd3;   // source select: 0..2 = M0..M2, 3 = V

    reg  [2:0]    state;
    reg  [NW-1:0] n_q;        // candidates of the run (clamped)
    reg  [NW-1:0] kk;         // number of indices to emit, min(k, n)
    reg           all_q;      // emit every index (k >= n)
    reg  [NW-1:0] m_q;        // candidates of the current pass
    reg  [NW-1:0] k_rem;      // rank of the wanted value among the current candidates
    reg  [NW-1:0] pc;         // cycle within the pass
    reg  [1:0]    src;        // source RAM of the current pass
    reg  [VB-1:0] pivot_q;
    reg  [NW-1:0] e_cnt;      // values == pivot in this pass
    // compare stage
    reg           p1_valid;
    reg  [RW-1:0] p1_row;
    reg           p2_valid;
    reg  [RDW-1:0] p2_data;
    reg  [C-1:0]  p2_gt, p2_lt;
    // emit
    reg  [RW-1:0] er;         // row being emitted
    reg  [C-1:0]  emask;      // selected lanes of that row not yet emitted
    reg  [NW-1:0] ties_left;
    reg  [NW-1:0] emitted;

    localparam [NW-1:0] N_MAX = L_MAX[NW-1:0];
    wire [NW-1:0] n_clamp = (n > N_MAX) ? N_MAX : n;
    wire [NW-1:0] rows    = {{LW{1'b0}}, m_q[NW-1:LW]}            // ceil(m / C)
                          + {{(NW-1){1'b0}}, |m_q[LW-1:0]};
    wire          in_pass = (state == S_PASS);
    wire          decide  = in_pass && (pc == rows + {{(NW-2){1'b0}}, 2'd2});

    // ---------------------------------------------------------------- RAMs
    wire [RW-1:0]  rd_addr = in_pass ? pc[RW-1:0] : er;
    wire [RDW-1:0] rd_v;
    wire [RDW-1:0] rd_m0, rd_m1, rd_m2;
    wire           load_we = load_valid && (state == S_IDLE);

    localparam integer LL  = LOAD_LANES;
    localparam integer LCW = $clog2(LL + 1);
    genvar gl;
    generate
        if (LL == 1) begin : g_count_unused
            /* verilator lint_off UNUSEDSIGNAL */
            wire unused_load_count = |load_count;  // one value per cycle: count is always 1
            /* verilator lint_on UNUSEDSIGNAL */
        end
        for (gl = 0; gl < C; gl = gl + 1) begin : g_vlane
            // value j of the load goes to lane (load_index + j) mod C: lane gl takes j = gl -
            // load_index mod C when j < load_count (one value per cycle at LL = 1), in the
            // load's row, or in the next one for the lanes below load_index mod C (the load
            // crosses a row)
            localparam integer  GL_I = gl;
            localparam [LW-1:0] GL = GL_I[LW-1:0];
            wire [LW-1:0] lj = GL - load_index[LW-1:0];
            wire [RW-1:0] lane_row;
            if (gl == C - 1) begin : g_row_last  // the last lane is never below the start
                assign lane_row = load_index[IW-1:LW];
            end else begin : g_row
                assign lane_row = load_index[IW-1:LW] +
                                  {{(RW-1){1'b0}}, (GL < load_index[LW-1:0])};
            end
            wire          lane_we;
            wire [VB-1:0] lane_value;
            if (LL == 1) begin : g_one
                assign lane_we = load_we && (lj == {LW{1'b0}});
                assign lane_value = load_value;
            end else begin : g_many
                localparam integer LLW = $clog2(LL);
                assign lane_we = load_we &&
                                 ({{LCW{1'b0}}, lj} < {{LW{1'b0}}, load_count});
                assign lane_value = load_value[lj[LLW-1:0]*VB +: VB];
            end
            spatten_sdp_ram #(.DEPTH(ROWS), .AW(RW), .W(VB)) u_v (
                .clk     (clk),
                .wr_en   (lane_we),
                .wr_addr (lane_row),
                .wr_data (lane_value),
                .rd_en   (1'b1),
                .rd_addr (rd_addr),
                .rd_data (rd_v[gl*VB +: VB])
            );
        end
    endgenerate

    // destinations of the > and < partitions: the two candidate RAMs that are not the source
    wire [1:0] gdst = (src == SRC_V) ? 2'd0 : ((src == 2'd2) ? 2'd0 : src + 2'd1);
    wire [1:0] ldst = (src == SRC_V) ? 2'd1 : ((src == 2'd0) ? 2'd2 : src - 2'd1);

    wire           g_we, l_we;
    wire [RW-1:0]  g_wa, l_wa;
    wire [RDW-1:0] g_wd, l_wd;
    wire [NW-1:0]  g_total, l_total;
    wire [VB-1:0]  g_sample, l_sample;

    spatten_sdp_ram #(.DEPTH(ROWS), .AW(RW), .W(RDW)) u_m0 (
        .clk (clk),
        .wr_en   ((gdst == 2'd0) ? g_we : (ldst == 2'd0) && l_we),
        .wr_addr ((gdst == 2'd0) ? g_wa : l_wa),
        .wr_data ((gdst == 2'd0) ? g_wd : l_wd),
        .rd_en (1'b1), .rd_addr (rd_addr), .rd_data (rd_m0)
    );
    spatten_sdp_ram #(.DEPTH(ROWS), .AW(RW), .W(RDW)) u_m1 (
        .clk (clk),
        .wr_en   ((gdst == 2'd1) ? g_we : (ldst == 2'd1) && l_we),
        .wr_addr ((gdst == 2'd1) ? g_wa : l_wa),
        .wr_data ((gdst == 2'd1) ? g_wd : l_wd),
        .rd_en (1'b1), .rd_addr (rd_addr), .rd_data (rd_m1)
    );
    spatten_sdp_ram #(.DEPTH(ROWS), .AW(RW), .W(RDW)) u_m2 (
        .clk (clk),
        .wr_en   ((gdst == 2'd2) ? g_we : (ldst == 2'd2) && l_we),
        .wr_addr ((gdst == 2'd2) ? g_wa : l_wa),
        .wr_data ((gdst == 2'd2) ? g_wd : l_wd),
        .rd_en (1'b1), .rd_addr (rd_addr), .rd_data (rd_m2)
    );

    reg [RDW-1:0] row_data;
    always @* begin
        case (in_pass ? src : SRC_V)
            2'd0:    row_data = rd_m0;
            2'd1:    row_data = rd_m1;
            2'd2:    row_data = rd_m2;
            default: row_data = rd_v;
        endcase
    end

    // ---------------------------------------------------------------- compare stage
    wire          first_pass = (src == SRC_V);
    wire [VB-1:0] piv = (first_pass && p1_row == {RW{1'b0}}) ? row_data[VB-1:0] : pivot_q;
    reg  [C-1:0]  c_gt, c_eq, c_lt;
    reg  [NW-1:0] c_eqn;
    reg  [IW-1:0] lane_idx;
    integer j;
    always @* begin
        c_gt  = {C{1'b0}};
        c_eq  = {C{1'b0}};
        c_lt  = {C{1'b0}};
        c_eqn = {NW{1'b0}};
        for (j = 0; j < C; j = j + 1) begin
            lane_idx = {p1_row, j[LW-1:0]};
            if ({1'b0, lane_idx} < m_q) begin
                c_gt[j] = row_data[j*VB +: VB] >  piv;
                c_eq[j] = row_data[j*VB +: VB] == piv;
                c_lt[j] = row_data[j*VB +: VB] <  piv;
            end
            c_eqn = c_eqn + {{(NW-1){1'b0}}, c_eq[j]};
        end
    end

    // ---------------------------------------------------------------- partition writers
    wire stage_clr = decide || ((state == S_IDLE) && start);

    spatten_topk_stage #(
        .VALUE_BITS (VB), .LANES (C), .LANE_BITS (LW), .ROW_BITS (RW), .COUNT_BITS (NW)
    ) u_gt (
        .clk (clk), .rst_n (rst_n), .clr (stage_clr),
        .in_valid (p2_valid), .in_mask (p2_gt), .in_data (p2_data), .flush (decide),
        .wr_en (g_we), .wr_addr (g_wa), .wr_data (g_wd), .total (g_total), .sample (g_sample)
    );
    spatten_topk_stage #(
        .VALUE_BITS (VB), .LANES (C), .LANE_BITS (LW), .ROW_BITS (RW), .COUNT_BITS (NW)
    ) u_lt (
        .clk (clk), .rst_n (rst_n), .clr (stage_clr),
        .in_valid (p2_valid), .in_mask (p2_lt), .in_data (p2_data), .flush (decide),
        .wr_en (l_we), .wr_addr (l_wa), .wr_data (l_wd), .total (l_total), .sample (l_sample)
    );

    wire [NW:0] ge_total = {1'b0, g_total} + {1'b0, e_cnt};

    // ---------------------------------------------------------------- emit selection
    reg [C-1:0]  sel;
    reg [NW-1:0] tl;
    reg [IW-1:0] e_idx;
    integer je, jl;
    always @* begin
        sel = {C{1'b0}};
        tl  = ties_left;
        for (je = 0; je < C; je = je + 1) begin
            e_idx = {er, je[LW-1:0]};
            if ({1'b0, e_idx} < n_q) begin
                if (all_q || (rd_v[je*VB +: VB] > thr)) begin
                    sel[je] = 1'b1;
                end else if ((rd_v[je*VB +: VB] == thr) && (tl != {NW{1'b0}})) begin
                    sel[je] = 1'b1;
                    tl     = tl - 1'b1;
                end
            end
        end
    end

    reg [LW-1:0] low_lane;
    always @* begin
        low_lane = {LW{1'b0}};
        for (jl = C - 1; jl >= 0; jl = jl - 1) begin
            if (emask[jl]) low_lane = jl[LW-1:0];
        end
    end

    wire last_beat = (emitted == kk - 1'b1);

    assign busy        = (state != S_IDLE);
    assign done        = (state == S_DONE);
    assign out_valid   = (state == S_E_OUT) && (emask != {C{1'b0}});
    assign out_index   = {er, low_lane};
    assign out_last    = out_valid && last_beat;
    assign pass_valid  = decide;
    assign pass_m      = m_q;
    assign pass_cycles = pc + 1'b1;

    // ---------------------------------------------------------------- control
    always @(posedge clk) begin
        if (!rst_n) begin
            state     <= S_IDLE;
            n_q       <= {NW{1'b0}};
            kk        <= {NW{1'b0}};
            all_q     <= 1'b0;
            m_q       <= {NW{1'b0}};
            k_rem     <= {NW{1'b0}};
            pc        <= {NW{1'b0}};
            src       <= SRC_V;
            pivot_q   <= {VB{1'b0}};
            e_cnt     <= {NW{1'b0}};
            p1_valid  <= 1'b0;
            p1_row    <= {RW{1'b0}};
            p2_valid  <= 1'b0;
            p2_data   <= {RDW{1'b0}};
            p2_gt     <= {C{1'b0}};
            p2_lt     <= {C{1'b0}};
            er        <= {RW{1'b0}};
            emask     <= {C{1'b0}};
            ties_left <= {NW{1'b0}};
            emitted   <= {NW{1'b0}};
            thr       <= {VB{1'b0}};
            ties      <= {NW{1'b0}};
            passes    <= {NW{1'b0}};
            cycles    <= 32'd0;
        end else begin
            // compare pipeline (only meaningful in S_PASS)
            p1_valid <= in_pass && (pc < rows);
            p1_row   <= pc[RW-1:0];
            p2_valid <= p1_valid;
            p2_data  <= row_data;
            p2_gt    <= c_gt;
            p2_lt    <= c_lt;
            if (p1_valid) begin
                e_cnt <= e_cnt + c_eqn;
                if (first_pass && p1_row == {RW{1'b0}}) pivot_q <= row_data[VB-1:0];
            end

            case (state)
                S_IDLE: begin
                    if (start) begin
                        n_q     <= n_clamp;
                        thr     <= {VB{1'b0}};
                        ties    <= {NW{1'b0}};
                        passes  <= {NW{1'b0}};
                        cycles  <= 32'd0;
                        emitted <= {NW{1'b0}};
                        er      <= {RW{1'b0}};
                        m_q     <= n_clamp;
                        k_rem   <= k;
                        src     <= SRC_V;
                        pc      <= {NW{1'b0}};
                        e_cnt   <= {NW{1'b0}};
                        all_q   <= (k >= n_clamp);
                        kk      <= (k >= n_clamp) ? n_clamp : k;
                        if ((n_clamp == {NW{1'b0}}) || (k == {NW{1'b0}}))
                            state <= S_DONE;
                        else if (k >= n_clamp)
                            state <= S_E_RD;
                        else
                            state <= S_PASS;
                    end
                end
                S_PASS: begin
                    cycles <= cycles + 1'b1;
                    pc     <= pc + 1'b1;
                    if (decide) begin
                        passes <= passes + 1'b1;
                        pc     <= {NW{1'b0}};
                        e_cnt  <= {NW{1'b0}};
                        if (k_rem <= g_total) begin
                            m_q     <= g_total;
                            src     <= gdst;
                            pivot_q <= g_sample;
                        end else if ({1'b0, k_rem} <= ge_total) begin
                            thr       <= pivot_q;
                            ties      <= k_rem - g_total;
                            ties_left <= k_rem - g_total;
                            state     <= S_E_RD;
                        end else begin
                            k_rem   <= k_rem - ge_total[NW-1:0];
                            m_q     <= l_total;
                            src     <= ldst;
                            pivot_q <= l_sample;
                        end
                    end
                end
                S_E_RD: state <= S_E_MASK;
                S_E_MASK: begin
                    emask     <= sel;
                    ties_left <= tl;
                    state     <= S_E_OUT;
                end
                S_E_OUT: begin
                    if (emask == {C{1'b0}}) begin
                        er    <= er + 1'b1;
                        state <= S_E_RD;
                    end else if (out_ready) begin
                        emask   <= emask & (emask - 1'b1);
                        emitted <= emitted + 1'b1;
                        if (last_beat) state <= S_DONE;
                    end
                end
                default: state <= S_IDLE;   // S_DONE
            endcase
        end
    end
endmodule
