// prob·V accumulator and output stage (docs/architecture.md 4.6).
//
//   acc_d = sum_t p_t · v_eff[t][d]                  exact, ACC_BITS signed
//   out_d = clamp((acc_d + 2^10) >>> 11, -32768, 32767)
//   abs_sum = sum_d |out_d|                            (head importance, section 7)
//
// PV_MULS = VPC·D multipliers take a beat of up to VPC (probability, value vector) pairs per
// cycle, VPC in {1, 2, 4, 8} (default PV_MULS = D: one pair per cycle; SpAtten's 512
// multipliers at D = 64 are VPC = 8). `clear` zeroes the accumulators for a new job; in_last
// marks the job's final beat. The products are registered once (stage s1); the next cycle an
// adder tree per element d sums the beat's VPC products and the accumulator adds the tree's
// sum (VPC = 1: the product alone, exactly the single-pair datapath). The result is computed
// the cycle after the last accumulate and held on out_* until out_ready.
//
// Ports (VPC = PV_MULS/D; CNTW = clog2(VPC+1), 1 bit at VPC = 1):
//   in_prob   VPC x 16-bit unsigned Q1.15, pair j in bits [16j +: 16]
//   in_value  VPC x D x 12-bit signed v_eff, pair j in bits [j*D*12 +: D*12], element d of
//             a vector in its bits [12d +: 12]
//   in_count  CNTW bits: valid pairs in the beat, 1..VPC, packed from pair 0; only the job's
//             last beat may carry fewer than VPC. At VPC = 1 it is ignored: drive it 1.
//             Pairs j >= in_count are dropped by zeroing their probability before the
//             multipliers (VPC x 16 AND gates).
//   in_valid/in_ready/in_last  one beat per cycle; in_ready = !out_valid && !finishing &&
//             !clear (a new job's beats wait until the previous result has been taken).
//   out_data  D x 16-bit signed, out_abs_sum 22 bits; out_valid until out_ready.
// Timing (any VPC): the job's last beat accepted in cycle c (handshake at the edge ending it)
// is in s1 in cycle c+1, accumulated at the edge ending c+1, rounded at the edge ending c+2:
// out_valid from cycle c+3.
//
// Why ACC_BITS = 32 is exact (section 4.6; models/core.py weighted_sum sums in int64): in the
// core the probabilities of a job sum to at most 32768 + n/2 + 1 <= 33281 (n <= 1024,
// section 4.4), each p_t >= 0 and |v| <= 2048, so every partial sum, whichever pairs it holds,
// has |acc| <= 33281 · 2048 < 2^27. The beat's tree adds in ACC_BITS too: two's-complement
// addition is exact modulo 2^ACC_BITS, so the accumulator holds the exact sum whenever the
// final |acc_d| < 2^(ACC_BITS-1), however the pairs were grouped into beats and tree nodes
// (an exact tree would need 29 + clog2(VPC) bits: 32 at VPC = 8, no wider anyway).
// (One beat of 8 pairs of the largest 16-bit probability, 8 · 65535 · 2048 < 2^30, fits too.)
module spatten_pv_accum #(
    parameter integer D        = 64,
    parameter integer ACC_BITS = 32,
    parameter integer PV_MULS  = D
) (
    // Port widths spelt out with VPC = PV_MULS/D (the localparams come after the port list).
    input  wire                              clk,
    input  wire                              rst_n,
    input  wire                              clear,
    input  wire                              in_valid,
    output wire                              in_ready,
    input  wire [(PV_MULS/D)*16-1:0]         in_prob,    // VPC x unsigned Q1.15
    input  wire [PV_MULS*12-1:0]             in_value,   // VPC x D x 12-bit signed v_eff
    input  wire [$clog2(PV_MULS/D+1)-1:0]    in_count,   // CNTW
    input  wire                              in_last,
    output reg                               out_valid,
    input  wire                              out_ready,
    output reg  [D*16-1:0]                   out_data,   // D x 16-bit signed
    output reg  [21:0]                       out_abs_sum
);
    localparam integer VPC  = PV_MULS / D;                 // pairs per beat
    localparam integer LVP  = $clog2(VPC);                 // adder tree levels
    localparam integer PW   = 29;                          // 17-bit signed prob x 12-bit value
    localparam integer CNTW = $clog2(VPC + 1);

    reg                    s1_valid, s1_last;
    reg  [PV_MULS*PW-1:0]  s1_prod;        // pair j, element d at [(j*D + d)*PW +: PW]
    reg  [D*ACC_BITS-1:0]  acc;
    reg                    finishing;      // the last product is being accumulated

    // A new job's pairs wait until the previous result has been taken.
    assign in_ready = !out_valid && !finishing && !clear;

    // Probabilities of the beat's valid pairs; the others zeroed (their products are 0).
    wire [VPC*16-1:0] prob_eff;
    genvar pj;
    generate
        if (VPC > 1) begin : g_mask
            for (pj = 0; pj < VPC; pj = pj + 1) begin : pair
                localparam [CNTW-1:0] J = pj;
                assign prob_eff[pj*16 +: 16] = (in_count > J) ? in_prob[pj*16 +: 16] : 16'd0;
            end
        end else begin : g_one
            assign prob_eff = in_prob;
            wire unused_in_count = ^in_count;          // one pair per beat: ignored
        end
    endgenerate

    // Adder tree over the pairs of a beat, per element d: the VPC products, sign-extended to
    // ACC_BITS (see the header for why that width is exact), summed pairwise level by level in
    // lane_t (lane j = lane 2j + lane 2j+1 at each level, so log2 VPC adders deep), then the
    // accumulator adds the result. Written as a procedural loop rather than a generate tree of
    // slices of one wide net: Icarus re-evaluates every reader of a wide net whenever any slice
    // changes, which made a 64 x 7-node tree hundreds of times slower to simulate.
    integer e, j, lvl;
    reg [VPC*ACC_BITS-1:0] lane_t;
    reg [D*ACC_BITS-1:0]   beat_sum;
    always @(*) begin
        beat_sum = {D*ACC_BITS{1'b0}};
        lane_t = {VPC*ACC_BITS{1'b0}};
        for (e = 0; e < D; e = e + 1) begin
            for (j = 0; j < VPC; j = j + 1)
                lane_t[j*ACC_BITS +: ACC_BITS] =
                    {{(ACC_BITS-PW){s1_prod[(j*D + e)*PW + PW-1]}}, s1_prod[(j*D + e)*PW +: PW]};
            for (lvl = 1; lvl <= LVP; lvl = lvl + 1)
                for (j = 0; j < (VPC >> lvl); j = j + 1)
                    lane_t[j*ACC_BITS +: ACC_BITS] = lane_t[(2*j)*ACC_BITS +: ACC_BITS]
                                                   + lane_t[(2*j+1)*ACC_BITS +: ACC_BITS];
            beat_sum[e*ACC_BITS +: ACC_BITS] = lane_t[ACC_BITS-1:0];
        end
    end

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
            for (k = 0; k < PV_MULS; k = k + 1)     // (per pair: one replication of
                s1_prod[k*PW +: PW] <= {PW{1'b0}};  // 14848 bits trips Verilator's limit)
            acc <= {D*ACC_BITS{1'b0}};
            finishing <= 1'b0;
            out_valid <= 1'b0;
            out_data <= {D*16{1'b0}};
            out_abs_sum <= 22'd0;
        end else begin
            s1_valid <= in_valid && in_ready;
            s1_last <= in_valid && in_ready && in_last;
            if (in_valid && in_ready) begin
                for (k = 0; k < PV_MULS; k = k + 1) begin
                    s1_prod[k*PW +: PW] <= $signed({1'b0, prob_eff[(k/D)*16 +: 16]})
                                           * $signed(in_value[k*12 +: 12]);
                end
            end
            if (clear) begin
                acc <= {D*ACC_BITS{1'b0}};
            end else if (s1_valid) begin
                for (k = 0; k < D; k = k + 1) begin
                    acc[k*ACC_BITS +: ACC_BITS] <= acc[k*ACC_BITS +: ACC_BITS]
                                                 + beat_sum[k*ACC_BITS +: ACC_BITS];
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
