// prob·V accumulator and output stage (docs/architecture.md 4.6).
//
//   acc_d = sum_t p_t · v_eff[t][d]                  exact, ACC_BITS signed
//   out_d = clamp((acc_d + 2^10) >>> 11, -32768, 32767)
//   abs_sum = sum_d |out_d|                            (head importance, section 7)
//
// `clear` zeroes the accumulators for a new job. One (probability, value vector) pair is
// accepted per cycle; in_last marks the job's final pair. The products are registered once
// before the accumulate, and the result is held on out_* until out_ready.
module spatten_pv_accum #(
    parameter integer D        = 64,
    parameter integer ACC_BITS = 32
) (
    input  wire            clk,
    input  wire            rst_n,
    input  wire            clear,
    input  wire            in_valid,
    output wire            in_ready,
    input  wire [15:0]     in_prob,        // unsigned Q1.15
    input  wire [D*12-1:0] in_value,       // D x 12-bit signed v_eff
    input  wire            in_last,
    output reg             out_valid,
    input  wire            out_ready,
    output reg  [D*16-1:0] out_data,       // D x 16-bit signed
    output reg  [21:0]     out_abs_sum
);
    reg                    s1_valid, s1_last;
    reg  [D*29-1:0]        s1_prod;        // 17-bit signed prob x 12-bit signed value
    reg  [D*ACC_BITS-1:0]  acc;
    reg                    finishing;      // the last product is being accumulated

    // A new job's pairs wait until the previous result has been taken.
    assign in_ready = !out_valid && !finishing && !clear;

    integer d;
    reg signed [ACC_BITS-1:0] acc_d, rounded;
    reg signed [15:0]         sat_d;
    reg        [21:0]         abs_total;
    reg        [D*16-1:0]     out_next;

    // Output stage from the accumulators (used the cycle after the last accumulate).
    always @(*) begin
        abs_total = 22'd0;
        out_next = {D*16{1'b0}};
        for (d = 0; d < D; d = d + 1) begin
            acc_d = acc[d*ACC_BITS +: ACC_BITS];
            rounded = (acc_d + 32'sd1024) >>> 11;
            if (rounded > 32'sd32767)
                sat_d = 16'sd32767;
            else if (rounded < -32'sd32768)
                sat_d = -16'sd32768;
            else
                sat_d = rounded[15:0];
            out_next[d*16 +: 16] = sat_d;
            abs_total = abs_total + (sat_d[15] ? {6'd0, -sat_d} : {6'd0, sat_d});
        end
    end

    integer k;
    always @(posedge clk) begin
        if (!rst_n) begin
            s1_valid <= 1'b0;
            s1_last <= 1'b0;
            s1_prod <= {D*29{1'b0}};
            acc <= {D*ACC_BITS{1'b0}};
            finishing <= 1'b0;
            out_valid <= 1'b0;
            out_data <= {D*16{1'b0}};
            out_abs_sum <= 22'd0;
        end else begin
            s1_valid <= in_valid && in_ready;
            s1_last <= in_valid && in_ready && in_last;
            if (in_valid && in_ready) begin
                for (k = 0; k < D; k = k + 1) begin
                    s1_prod[k*29 +: 29] <= $signed({1'b0, in_prob})
                                           * $signed(in_value[k*12 +: 12]);
                end
            end
            if (clear) begin
                acc <= {D*ACC_BITS{1'b0}};
            end else if (s1_valid) begin
                for (k = 0; k < D; k = k + 1) begin
                    acc[k*ACC_BITS +: ACC_BITS] <= acc[k*ACC_BITS +: ACC_BITS]
                        + {{(ACC_BITS-29){s1_prod[k*29+28]}}, s1_prod[k*29 +: 29]};
                end
            end
            if (s1_valid && s1_last) finishing <= 1'b1;
            if (finishing) begin
                finishing <= 1'b0;
                out_valid <= 1'b1;
                out_data <= out_next;
                out_abs_sum <= abs_total;
            end else if (out_valid && out_ready) begin
                out_valid <= 1'b0;
            end
        end
    end
endmodule
