// Softmax unit (docs/architecture.md 4.4, probabilities in the format of 4.5), bit-exact to
// models/softmax.py `softmax_fixed`:
//
//   m   = max_t s_t                              first maximum on ties (max_index)
//   e_t = ((m - s_t) * score_mult) >> score_shift, saturated to 4096 (= 16.0 in Q.8) when its
//         integer part is >= 16, which spatten_exp2 maps to 0 exactly like any larger exponent
//   u_t = 2^(-e_t/256) in Q1.15                  (spatten_exp2)
//   S   = sum_t u_t                              26 bits (2^15 <= S <= 2^25)
//   R   = floor(2^40 / S)                        spatten_divider, 41 cycles
//   p_t = (u_t * R + 2^24) >> 25                 unsigned Q1.15, 0..32768
//   p_max = (2^15 * R + 2^24) >> 25
//
// Interface (LANES = 1 is the one-score-per-cycle unit the core uses; LANES > 1 moves LANES
// consecutive positions per beat, the paper's multi-lane softmax)
//   start        one-cycle pulse, taken only while !busy and 1 <= n_tokens <= L_MAX (otherwise
//                ignored): latches n_tokens, score_mult and score_shift and raises busy.
//   n_update     late length: in the load pass, a cycle with n_update = 1 replaces n with
//                n_tokens (1..L_MAX, more than the scores taken before the current beat, at the
//                latest in the cycle that takes the beat holding the n-th score). Lets a
//                producer start the unit before it knows n (the core's key list is still being
//                scanned when its first scores arrive): start with n = L_MAX, update when the
//                count is known.
//   score_*      valid/ready stream of ceil(n / LANES) beats in token order; score_ready is high
//                during the load pass only. score_data holds LANES 30-bit two's complement
//                scores, lane j (bits 30j+29..30j) = position taken + j, lane 0 in the low
//                bits. The beat that reaches n carries n - taken valid lanes; the others are
//                ignored (any value). Exactly ceil(n / LANES) beats are taken.
//   prob_*       valid/ready stream of ceil(n / LANES) beats in token order: prob_data holds
//                LANES Q1.15 probabilities (lane j in bits 16j+15..16j = position
//                prob_index + j; lanes at positions >= n are 0), prob_index the position of
//                lane 0 (a multiple of LANES), prob_count the valid lanes of the beat (LANES,
//                except n - prob_index in the last beat; always 1 at LANES = 1), prob_last on
//                the beat holding position n - 1. prob_valid and the data hold until prob_ready
//                (AXI-stream rules); any back-pressure is allowed.
//   stats_valid  high from the end of the division until the next start: max_prob (p_max),
//                max_index (first position of the maximum score, across lanes and beats),
//                exp_sum (S), recip (R) are valid (exp_sum/recip/max_prob are reused as working
//                registers before that).
//   done         one-cycle pulse the cycle after the last probability beat was accepted; busy
//                drops in the same cycle and a new start may be given in it.
//
// Passes (one beat of LANES positions per cycle each), all on a single simple dual-port buffer
// of L_MAX / LANES entries of LANES * 30 bits:
//   1 load:  beat b is written to buf[b]. The maximum is tracked: at LANES = 1 directly, at
//            LANES > 1 through a compare tree over the valid lanes (lower lane wins a tie) and
//            one register, then merged (a later beat must be strictly greater).
//   2 exp:   buf[b] is read, per lane d = m - s (reg), d * score_mult (reg), >> shift +
//            saturate (reg), exp2 (LANES spatten_exp2) -> u written back in place to buf[b]
//            (the write runs 4 entries behind the read; lanes past n are written as u = 0).
//            The u of a beat go through an adder tree with one register per level (log2(LANES)
//            levels, none at LANES = 1) and are added to S. Without stalls: B + 4 + log2(LANES)
//            cycles, B = ceil(n / LANES).
//   div:     R = floor(2^40 / S): 41 cycles, plus one cycle to start (one divider).
//   3 out:   buf[b] (u) is read (buffer output reg), per lane (u * R + 2^24) >> 25 (reg), then
//            the prob_data output register. The three stages advance together whenever the
//            output register is empty or taken (prob_ready reaches the buffer read enable
//            combinationally).
// Latency with a beat offered every cycle and prob_ready high, B = ceil(n / LANES): done is seen
// 3B + 50 + log2(LANES) cycles after the start cycle (start 1, load B, exp B + 4 + log2(LANES),
// div 42 incl. its start, out B + 3), i.e. 2B + 50 + log2(LANES) after the last beat is taken.
// At LANES = 1 that is 3n + 50 (checked by tests/hdl/cocotb_softmax.py; LANES = 8 and 4 by
// tests/hdl/cocotb_softmax_lanes.py).
module spatten_softmax #(
    parameter integer L_MAX = 1024,  // most tokens (power of two, >= 2 * LANES)
    parameter integer LANES = 1      // scores / probabilities per beat (power of two, 1..16)
) (
    input  wire                          clk,
    input  wire                          rst_n,
    // job control
    input  wire                          start,
    input  wire [$clog2(L_MAX+1)-1:0]    n_tokens,
    input  wire                          n_update,
    input  wire [15:0]                   score_mult,
    input  wire [5:0]                    score_shift,
    output wire                          busy,
    output reg                           done,
    // scores in
    input  wire                          score_valid,
    output wire                          score_ready,
    input  wire [LANES*30-1:0]           score_data,
    // probabilities out
    output reg                           prob_valid,
    input  wire                          prob_ready,
    output reg  [LANES*16-1:0]           prob_data,
    output reg  [$clog2(L_MAX)-1:0]      prob_index,
    output reg  [$clog2(LANES+1)-1:0]    prob_count,
    output reg                           prob_last,
    // statistics of the job
    output reg                           stats_valid,
    output reg  [15:0]                   max_prob,
    output reg  [$clog2(L_MAX)-1:0]      max_index,
    output reg  [25:0]                   exp_sum,
    output reg  [25:0]                   recip
);
    localparam integer AW = $clog2(L_MAX);
    localparam integer TB = $clog2(L_MAX + 1);
    localparam integer LW = $clog2(LANES);       // lane index bits = adder tree levels
    localparam integer CW = $clog2(LANES + 1);
    localparam integer SW = 20;                  // adder tree node: sum of <= 16 u <= 2^19
    localparam [TB-1:0] N_MAX = L_MAX[TB-1:0];
    localparam [TB-1:0] STEP = LANES[TB-1:0];    // positions per beat

    localparam [2:0] S_IDLE = 3'd0;
    localparam [2:0] S_LOAD = 3'd1;
    localparam [2:0] S_EXP  = 3'd2;
    localparam [2:0] S_DIV  = 3'd3;
    localparam [2:0] S_OUT  = 3'd4;

    genvar gl, gi;

    // Verilog-2005 has no elaboration-time assertion: a bad parameter set instantiates a module
    // that does not exist, so every tool stops with its name.
    generate
        if (LANES < 1 || LANES > 16 || (1 << LW) != LANES || (1 << AW) != L_MAX ||
            L_MAX < 2 * LANES) begin : g_bad_parameters
            spatten_softmax_needs_power_of_two_LANES_1_to_16_and_L_MAX_at_least_2_LANES u_stop ();
        end
    endgenerate

    reg [2:0]         state;
    reg [TB-1:0]      n_reg;
    reg [15:0]        mult_reg;
    reg [5:0]         shift_reg;
    reg [TB-1:0]      wr_cnt;      // positions: load: scores written; exp: u written
    reg [TB-1:0]      rd_cnt;      // positions: exp and out: buffer reads issued
    reg signed [29:0] max_score;

    // pass 2 pipeline (per lane: LANES fields side by side, lane 0 in the low bits)
    reg                   e1_v;    // buffer read data (a beat of scores) valid
    reg                   e2_v;
    reg  [LANES*30-1:0]   e2_diff; // m - s, 0 .. 2^30-1
    reg                   e3_v;
    reg  [LANES*46-1:0]   e3_prod; // (m - s) * score_mult
    reg                   e4_v;
    reg  [LANES*13-1:0]   e4_exp;  // saturated Q.8 exponent
    wire [LANES*13-1:0]   e3_sat;
    wire [LANES*16-1:0]   u_lane;  // u of the beat in e4, 0 in lanes past n
    wire [LANES*30-1:0]   u_wide;  // the same, one buffer field per lane

    // pass 3 pipeline
    reg                   o1_v, o1_last;
    reg  [AW-1:0]         o1_idx;
    reg  [CW-1:0]         o1_count;
    reg                   o2_v, o2_last;
    reg  [AW-1:0]         o2_idx;
    reg  [CW-1:0]         o2_count;
    reg  [LANES*16-1:0]   o2_prob; // rounded probabilities, moved to prob_data when the pipe moves
    wire [LANES*16-1:0]   o1_prob;
    wire [CW-1:0]         out_count;

    // load-pass maximum of one beat, merged into max_score
    wire                  bm_v;
    wire                  bm_first;
    wire [29:0]           bm_score;
    wire [AW-1:0]         bm_index;

    // divider
    reg               div_start;
    wire              div_done;
    /* verilator lint_off UNUSEDSIGNAL */
    // R = floor(2^40 / S) < 2^26 since S >= 2^15: quotient bits [40:26] are always zero.
    wire [40:0]       div_quo;
    /* verilator lint_on UNUSEDSIGNAL */

    // ---------------------------------------------------------------- buffer
    wire [LANES*30-1:0] buf_rd_data;
    wire        score_fire = score_valid && score_ready;
    wire [TB-1:0] n_load   = n_update ? n_tokens : n_reg;  // n of the load pass, this cycle
    wire        exp_issue  = (state == S_EXP) && (rd_cnt < n_reg);
    wire        out_move   = !prob_valid || prob_ready;   // pass 3 stages advance
    wire        out_issue  = (state == S_OUT) && (rd_cnt < n_reg) && out_move;
    wire        buf_wr_en  = score_fire || e4_v;
    wire [LANES*30-1:0] buf_wr_data = (state == S_LOAD) ? score_data : u_wide;
    // the beat read now holds position n - 1 (at one lane: rd_cnt + 1 == n)
    wire        rd_last    = (rd_cnt < n_reg) && (n_reg - rd_cnt <= STEP);
    wire        e4_last    = (wr_cnt + STEP >= n_reg);

    spatten_sdp_ram #(.DEPTH(L_MAX / LANES), .AW(AW - LW), .W(LANES * 30)) u_buf (
        .clk     (clk),
        .wr_en   (buf_wr_en),
        .wr_addr (wr_cnt[AW-1:LW]),
        .wr_data (buf_wr_data),
        .rd_en   (exp_issue || out_issue),
        .rd_addr (rd_cnt[AW-1:LW]),
        .rd_data (buf_rd_data)
    );

    assign busy = (state != S_IDLE);
    assign score_ready = (state == S_LOAD);

    // ---------------------------------------------------------------- load: beat maximum
    generate
        if (LANES == 1) begin : g_bm_direct
            assign bm_v = score_fire;
            assign bm_first = (wr_cnt == {TB{1'b0}});
            assign bm_score = score_data;
            assign bm_index = wr_cnt[AW-1:0];
        end else begin : g_bm_tree
            // Lanes at positions >= n hold no score. Valid lanes are a prefix of the beat, so a
            // subtree counts iff its lowest lane is valid, and lane 0 always is.
            wire [LANES-1:1] in_ok;
            for (gi = 1; gi < LANES; gi = gi + 1) begin : g_ok
                localparam integer LANE = gi;
                assign in_ok[gi] = (wr_cnt + LANE[TB-1:0]) < n_load;
            end
            for (gl = 0; gl <= LW; gl = gl + 1) begin : g_mx
                wire [(LANES >> gl)*30-1:0] score;
                wire [(LANES >> gl)*LW-1:0] lane;   // lane of each node's maximum
                if (gl == 0) begin : g_leaf
                    assign score = score_data;
                    for (gi = 0; gi < LANES; gi = gi + 1) begin : g_lane
                        localparam integer LANE = gi;
                        assign lane[gi*LW +: LW] = LANE[LW-1:0];
                    end
                end else begin : g_node
                    for (gi = 0; gi < (LANES >> gl); gi = gi + 1) begin : g_pair
                        localparam integer RIGHT = (2 * gi + 1) << (gl - 1);  // its lowest lane
                        wire [29:0] a = g_mx[gl-1].score[2*gi*30 +: 30];
                        wire [29:0] b = g_mx[gl-1].score[(2*gi+1)*30 +: 30];
                        // strictly greater: the lower lane (first position) wins a tie
                        wire take_b = in_ok[RIGHT] && ($signed(b) > $signed(a));
                        assign score[gi*30 +: 30] = take_b ? b : a;
                        assign lane[gi*LW +: LW] = take_b ? g_mx[gl-1].lane[(2*gi+1)*LW +: LW]
                                                          : g_mx[gl-1].lane[2*gi*LW +: LW];
                    end
                end
            end
            // One register stage after the tree: max_score is first used two cycles after the
            // last beat (exp pass, e2), so this costs no cycle.
            reg          r_v, r_first;
            reg [29:0]   r_score;
            reg [AW-1:0] r_index;
            always @(posedge clk) begin
                if (!rst_n) begin
                    r_v <= 1'b0;
                    r_first <= 1'b0;
                    r_score <= 30'd0;
                    r_index <= {AW{1'b0}};
                end else begin
                    r_v <= score_fire;
                    r_first <= (wr_cnt == {TB{1'b0}});
                    r_score <= g_mx[LW].score;
                    r_index <= {wr_cnt[AW-1:LW], g_mx[LW].lane};
                end
            end
            assign bm_v = r_v;
            assign bm_first = r_first;
            assign bm_score = r_score;
            assign bm_index = r_index;
        end
    endgenerate

    // ---------------------------------------------------------------- pass 2 datapath (lanes)
    generate
        for (gi = 0; gi < LANES; gi = gi + 1) begin : g_exp_lane
            wire [45:0] shifted = e3_prod[gi*46 +: 46] >> shift_reg;
            // Integer part >= 16 gives u = 0: saturate to 16.0 so the 13-bit exp2 input means
            // the same.
            assign e3_sat[gi*13 +: 13] = (|shifted[45:12]) ? 13'h1000 : {1'b0, shifted[11:0]};
            wire [15:0] u_raw;
            spatten_exp2 #(.EXP_BITS(13)) u_exp2 (
                .exponent (e4_exp[gi*13 +: 13]),
                .value    (u_raw)
            );
            // a lane past n (last beat) adds nothing to S and is written back as u = 0
            wire lane_ok;
            if (gi == 0) begin : g_first
                assign lane_ok = 1'b1;
            end else begin : g_other
                localparam integer LANE = gi;
                assign lane_ok = (wr_cnt + LANE[TB-1:0]) < n_reg;
            end
            assign u_lane[gi*16 +: 16] = lane_ok ? u_raw : 16'd0;
            assign u_wide[gi*30 +: 30] = {14'd0, u_lane[gi*16 +: 16]};
        end
    endgenerate

    // Adder tree over the lanes of a beat, one register per level (none at one lane): level 0
    // is the beat in e4, level LW its sum, accumulated into S.
    generate
        for (gl = 0; gl <= LW; gl = gl + 1) begin : g_sum
            wire [(LANES >> gl)*SW-1:0] node;
            wire                        v, last;
            if (gl == 0) begin : g_leaf
                for (gi = 0; gi < LANES; gi = gi + 1) begin : g_lane
                    assign node[gi*SW +: SW] = {4'd0, u_lane[gi*16 +: 16]};
                end
                assign v = e4_v;
                assign last = e4_last;
            end else begin : g_level
                wire [(LANES >> gl)*SW-1:0] pair_sum;
                for (gi = 0; gi < (LANES >> gl); gi = gi + 1) begin : g_pair
                    assign pair_sum[gi*SW +: SW] = g_sum[gl-1].node[2*gi*SW +: SW] +
                                                   g_sum[gl-1].node[(2*gi+1)*SW +: SW];
                end
                reg [(LANES >> gl)*SW-1:0] node_r;
                reg                        v_r, last_r;
                always @(posedge clk) begin
                    if (!rst_n) begin
                        node_r <= {((LANES >> gl)*SW){1'b0}};
                        v_r <= 1'b0;
                        last_r <= 1'b0;
                    end else begin
                        node_r <= pair_sum;
                        v_r <= g_sum[gl-1].v;
                        last_r <= g_sum[gl-1].last;
                    end
                end
                assign node = node_r;
                assign v = v_r;
                assign last = last_r;
            end
        end
    endgenerate

    wire [SW-1:0] beat_sum  = g_sum[LW].node;
    wire          beat_v    = g_sum[LW].v;
    wire          beat_last = g_sum[LW].last;

    // ---------------------------------------------------------------- pass 3 datapath (lanes)
    generate
        for (gi = 0; gi < LANES; gi = gi + 1) begin : g_out_lane
            // u * R + 2^24 <= 2^40 + 2^24 (u <= S): bit 41 and the 25 fraction bits are dropped.
            /* verilator lint_off UNUSEDSIGNAL */
            // Only bits [40:25] of the rounded product are the result.
            wire [41:0] round = {26'd0, buf_rd_data[gi*30 +: 16]} * {16'd0, recip} +
                                42'h1000000;
            /* verilator lint_on UNUSEDSIGNAL */
            assign o1_prob[gi*16 +: 16] = round[40:25];
        end
        if (LANES == 1) begin : g_count_one
            assign out_count = 1'b1;
        end else begin : g_count
            localparam [CW-1:0] FULL = LANES[CW-1:0];
            wire [TB-1:0] left = n_reg - rd_cnt;  // positions not yet read
            assign out_count = (left >= STEP) ? FULL : left[CW-1:0];
        end
    endgenerate

    /* verilator lint_off UNUSEDSIGNAL */
    // p_max = (2^15 * R + 2^24) >> 25 = (R + 2^9) >> 10, R <= 2^25: only bits [25:10] are used.
    wire [26:0] pmax_round = {1'b0, div_quo[25:0]} + 27'd512;
    /* verilator lint_on UNUSEDSIGNAL */

    // ---------------------------------------------------------------- divider
    /* verilator lint_off PINCONNECTEMPTY */
    // The remainder and busy of the divider are not needed.
    spatten_divider #(.NUM_W(41), .DEN_W(26)) u_div (
        .clk       (clk),
        .rst_n     (rst_n),
        .start     (div_start),
        .dividend  (41'h100_0000_0000),
        .divisor   (exp_sum),
        .busy      (),
        .done      (div_done),
        .quotient  (div_quo),
        .remainder ()
    );
    /* verilator lint_on PINCONNECTEMPTY */

    // ---------------------------------------------------------------- control and pipelines
    integer k;
    always @(posedge clk) begin
        if (!rst_n) begin
            state <= S_IDLE;
            n_reg <= {TB{1'b0}};
            mult_reg <= 16'd0;
            shift_reg <= 6'd0;
            wr_cnt <= {TB{1'b0}};
            rd_cnt <= {TB{1'b0}};
            max_score <= 30'sd0;
            max_index <= {AW{1'b0}};
            e1_v <= 1'b0;
            e2_v <= 1'b0;
            e2_diff <= {(LANES*30){1'b0}};
            e3_v <= 1'b0;
            e3_prod <= {(LANES*46){1'b0}};
            e4_v <= 1'b0;
            e4_exp <= {(LANES*13){1'b0}};
            o1_v <= 1'b0;
            o1_last <= 1'b0;
            o1_idx <= {AW{1'b0}};
            o1_count <= {CW{1'b0}};
            o2_v <= 1'b0;
            o2_last <= 1'b0;
            o2_idx <= {AW{1'b0}};
            o2_count <= {CW{1'b0}};
            o2_prob <= {(LANES*16){1'b0}};
            prob_valid <= 1'b0;
            prob_data <= {(LANES*16){1'b0}};
            prob_index <= {AW{1'b0}};
            prob_count <= {CW{1'b0}};
            prob_last <= 1'b0;
            div_start <= 1'b0;
            done <= 1'b0;
            stats_valid <= 1'b0;
            max_prob <= 16'd0;
            exp_sum <= 26'd0;
            recip <= 26'd0;
        end else begin
            done <= 1'b0;
            div_start <= 1'b0;

            // maximum (first position on ties: later beats must be strictly greater)
            if (bm_v && (bm_first || $signed(bm_score) > max_score)) begin
                max_score <= bm_score;
                max_index <= bm_index;
            end

            // pass 2 pipeline (never stalls)
            e1_v <= exp_issue;
            e2_v <= e1_v;
            e3_v <= e2_v;
            e4_v <= e3_v;
            for (k = 0; k < LANES; k = k + 1) begin
                e2_diff[k*30 +: 30] <= max_score - buf_rd_data[k*30 +: 30];
                e3_prod[k*46 +: 46] <= {16'd0, e2_diff[k*30 +: 30]} * {30'd0, mult_reg};
            end
            e4_exp <= e3_sat;

            // pass 3 pipeline (advances together while the output register can move)
            if (out_move) begin
                o1_v <= out_issue;
                o1_idx <= rd_cnt[AW-1:0];
                o1_count <= out_count;
                o1_last <= rd_last;
                o2_v <= o1_v;
                o2_idx <= o1_idx;
                o2_count <= o1_count;
                o2_last <= o1_last;
                o2_prob <= o1_prob;
                prob_valid <= o2_v;
                prob_index <= o2_idx;
                prob_count <= o2_count;
                prob_last <= o2_last;
                prob_data <= o2_prob;
            end

            case (state)
                S_IDLE: begin
                    if (start && n_tokens != {TB{1'b0}} && n_tokens <= N_MAX) begin
                        state <= S_LOAD;
                        n_reg <= n_tokens;
                        mult_reg <= score_mult;
                        shift_reg <= score_shift;
                        wr_cnt <= {TB{1'b0}};
                        stats_valid <= 1'b0;
                    end
                end
                S_LOAD: begin
                    if (n_update) n_reg <= n_tokens;
                    if (score_fire) begin
                        wr_cnt <= wr_cnt + STEP;
                        if (wr_cnt + STEP >= n_load) begin  // this beat holds position n - 1
                            state <= S_EXP;
                            wr_cnt <= {TB{1'b0}};
                            rd_cnt <= {TB{1'b0}};
                            exp_sum <= 26'd0;
                        end
                    end
                end
                S_EXP: begin
                    if (exp_issue) rd_cnt <= rd_cnt + STEP;
                    if (e4_v) wr_cnt <= wr_cnt + STEP;
                    if (beat_v) begin
                        exp_sum <= exp_sum + {{(26-SW){1'b0}}, beat_sum};
                        if (beat_last) begin
                            state <= S_DIV;
                            div_start <= 1'b1;
                        end
                    end
                end
                S_DIV: begin
                    if (div_done) begin
                        recip <= div_quo[25:0];
                        max_prob <= pmax_round[25:10];
                        stats_valid <= 1'b1;
                        rd_cnt <= {TB{1'b0}};
                        state <= S_OUT;
                    end
                end
                S_OUT: begin
                    if (out_issue) rd_cnt <= rd_cnt + STEP;
                    if (prob_valid && prob_ready && prob_last) begin
                        done <= 1'b1;
                        state <= S_IDLE;
                    end
                end
                default: state <= S_IDLE;
            endcase
        end
    end
endmodule
