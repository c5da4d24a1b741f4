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
// Interface
//   start        one-cycle pulse, taken only while !busy and 1 <= n_tokens <= L_MAX (otherwise
//                ignored): latches n_tokens, score_mult and score_shift and raises busy.
//   n_update     late length: in the load pass, a cycle with n_update = 1 replaces n with
//                n_tokens (1..L_MAX, more than the scores taken so far, at the latest in the
//                cycle that takes the new n-th score). Lets a producer start the unit before it
//                knows n (the core's key list is still being scanned when its first scores
//                arrive): start with n = L_MAX, update when the count is known.
//   score_*      valid/ready stream of the n scores (30-bit two's complement) in token order;
//                score_ready is high during the load pass only. Exactly n scores are taken.
//   prob_*       valid/ready stream of the n probabilities in token order: prob_data (Q1.15),
//                prob_index (token position 0..n-1), prob_last on the n-th. prob_valid and the
//                data hold until prob_ready (AXI-stream rules); any back-pressure is allowed.
//   stats_valid  high from the end of the division until the next start: max_prob (p_max),
//                max_index (first position of the maximum score), exp_sum (S), recip (R) are
//                valid (exp_sum/recip/max_prob are reused as working registers before that).
//   done         one-cycle pulse the cycle after the last probability was accepted; busy drops
//                in the same cycle and a new start may be given in it.
//
// Passes (one token per cycle each), all on a single L_MAX-entry simple dual-port buffer:
//   1 load:  score t is written to buf[t], the maximum is tracked.
//   2 exp:   buf[t] is read, d = m - s (reg), d * score_mult (reg), >> shift + saturate (reg),
//            exp2 -> u_t written back in place to buf[t] (the write runs 4 entries behind the
//            read) and added to S. Pipeline without stalls: n + 4 cycles.
//   div:     R = floor(2^40 / S): 41 cycles, plus one cycle to start.
//   3 out:   buf[t] (u_t) is read (buffer output reg), (u * R + 2^24) >> 25 (reg), then the
//            prob_data output register. The three stages advance together whenever the output register is empty or taken
//            (prob_ready reaches the buffer read enable combinationally).
// Latency with scores offered every cycle and prob_ready high: done is seen 3n + 50 cycles after
// the start cycle (start 1, load n, exp n + 4, div 42 incl. its start, out n + 3), i.e. 2n + 50
// after the last score is taken (checked by tests/hdl/cocotb_softmax.py).
module spatten_softmax #(
    parameter integer L_MAX = 1024  // most tokens (power of two, >= 2)
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
    input  wire [29:0]                   score_data,
    // probabilities out
    output reg                           prob_valid,
    input  wire                          prob_ready,
    output reg  [15:0]                   prob_data,
    output reg  [$clog2(L_MAX)-1:0]      prob_index,
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
    localparam [TB-1:0] N_MAX = L_MAX[TB-1:0];

    localparam [2:0] S_IDLE = 3'd0;
    localparam [2:0] S_LOAD = 3'd1;
    localparam [2:0] S_EXP  = 3'd2;
    localparam [2:0] S_DIV  = 3'd3;
    localparam [2:0] S_OUT  = 3'd4;

    reg [2:0]         state;
    reg [TB-1:0]      n_reg;
    reg [15:0]        mult_reg;
    reg [5:0]         shift_reg;
    reg [TB-1:0]      wr_cnt;      // load: scores written; exp: u written
    reg [TB-1:0]      rd_cnt;      // exp and out: buffer reads issued
    reg signed [29:0] max_score;

    // pass 2 pipeline
    reg               e1_v;        // buffer read data (a score) valid
    reg               e2_v;
    reg  [29:0]       e2_diff;     // m - s, 0 .. 2^30-1
    reg               e3_v;
    reg  [45:0]       e3_prod;     // (m - s) * score_mult
    reg               e4_v;
    reg  [12:0]       e4_exp;      // saturated Q.8 exponent
    wire [15:0]       u_val;

    // pass 3 pipeline
    reg               o1_v, o1_last;
    reg  [AW-1:0]     o1_idx;
    reg               o2_v, o2_last;
    reg  [AW-1:0]     o2_idx;
    reg  [15:0]       o2_prob;     // rounded probability, moved to prob_data when the pipe moves

    // divider
    reg               div_start;
    wire              div_done;
    /* verilator lint_off UNUSEDSIGNAL */
    // R = floor(2^40 / S) < 2^26 since S >= 2^15: quotient bits [40:26] are always zero.
    wire [40:0]       div_quo;
    /* verilator lint_on UNUSEDSIGNAL */

    // ---------------------------------------------------------------- buffer
    wire [29:0] buf_rd_data;
    wire        score_fire = score_valid && score_ready;
    wire [TB-1:0] n_load   = n_update ? n_tokens : n_reg;  // n of the load pass, this cycle
    wire        exp_issue  = (state == S_EXP) && (rd_cnt != n_reg);
    wire        out_move   = !prob_valid || prob_ready;   // pass 3 stages advance
    wire        out_issue  = (state == S_OUT) && (rd_cnt != n_reg) && out_move;
    wire        buf_wr_en  = score_fire || e4_v;
    wire [29:0] buf_wr_data = (state == S_LOAD) ? score_data : {14'd0, u_val};

    spatten_sdp_ram #(.DEPTH(L_MAX), .AW(AW), .W(30)) u_buf (
        .clk     (clk),
        .wr_en   (buf_wr_en),
        .wr_addr (wr_cnt[AW-1:0]),
        .wr_data (buf_wr_data),
        .rd_en   (exp_issue || out_issue),
        .rd_addr (rd_cnt[AW-1:0]),
        .rd_data (buf_rd_data)
    );

    assign busy = (state != S_IDLE);
    assign score_ready = (state == S_LOAD);

    // ---------------------------------------------------------------- pass 2 datapath
    wire [45:0] e3_shifted = e3_prod >> shift_reg;
    // Integer part >= 16 gives u = 0: saturate to 16.0 so the 13-bit exp2 input means the same.
    wire [12:0] e3_sat = (|e3_shifted[45:12]) ? 13'h1000 : {1'b0, e3_shifted[11:0]};

    spatten_exp2 #(.EXP_BITS(13)) u_exp2 (
        .exponent (e4_exp),
        .value    (u_val)
    );

    // ---------------------------------------------------------------- pass 3 datapath
    // u * R + 2^24 <= 2^40 + 2^24 (u <= S): bit 41 and the 25 fraction bits are dropped.
    /* verilator lint_off UNUSEDSIGNAL */
    // Only bits [40:25] of the rounded product and of the p_max sum are the result.
    wire [41:0] o1_round = {26'd0, buf_rd_data[15:0]} * {16'd0, recip} + 42'h1000000;
    // p_max = (2^15 * R + 2^24) >> 25 = (R + 2^9) >> 10, R <= 2^25.
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
            e2_diff <= 30'd0;
            e3_v <= 1'b0;
            e3_prod <= 46'd0;
            e4_v <= 1'b0;
            e4_exp <= 13'd0;
            o1_v <= 1'b0;
            o1_last <= 1'b0;
            o1_idx <= {AW{1'b0}};
            o2_v <= 1'b0;
            o2_last <= 1'b0;
            o2_idx <= {AW{1'b0}};
            o2_prob <= 16'd0;
            prob_valid <= 1'b0;
            prob_data <= 16'd0;
            prob_index <= {AW{1'b0}};
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

            // pass 2 pipeline (never stalls)
            e1_v <= exp_issue;
            e2_v <= e1_v;
            e2_diff <= max_score - buf_rd_data;
            e3_v <= e2_v;
            e3_prod <= {16'd0, e2_diff} * {30'd0, mult_reg};
            e4_v <= e3_v;
            e4_exp <= e3_sat;

            // pass 3 pipeline (advances together while the output register can move)
            if (out_move) begin
                o1_v <= out_issue;
                o1_idx <= rd_cnt[AW-1:0];
                o1_last <= (rd_cnt + 1'b1 == n_reg);
                o2_v <= o1_v;
                o2_idx <= o1_idx;
                o2_last <= o1_last;
                o2_prob <= o1_round[40:25];
                prob_valid <= o2_v;
                prob_index <= o2_idx;
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
                        wr_cnt <= wr_cnt + 1'b1;
                        if (wr_cnt == {TB{1'b0}} || $signed(score_data) > max_score) begin
                            max_score <= score_data;
                            max_index <= wr_cnt[AW-1:0];
                        end
                        if (wr_cnt + 1'b1 == n_load) begin
                            state <= S_EXP;
                            wr_cnt <= {TB{1'b0}};
                            rd_cnt <= {TB{1'b0}};
                            exp_sum <= 26'd0;
                        end
                    end
                end
                S_EXP: begin
                    if (exp_issue) rd_cnt <= rd_cnt + 1'b1;
                    if (e4_v) begin
                        exp_sum <= exp_sum + {10'd0, u_val};
                        wr_cnt <= wr_cnt + 1'b1;
                        if (wr_cnt + 1'b1 == n_reg) begin
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
                    if (out_issue) rd_cnt <= rd_cnt + 1'b1;
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
