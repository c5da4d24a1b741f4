// Q·K dot-product array (docs/architecture.md, section 4.2; reference models/core.py:
// dot_products).
//
//   score = sum_d query[d] * k[d]       exact, SW = 24 + clog2(D) bits signed (30 at D = 64)
//
// QK_MULS 12x12 multipliers feed a binary adder tree; a key takes NCH = D/QK_MULS passes
// (cycles), chunk c covering elements [c*QK_MULS, (c+1)*QK_MULS), and the chunk sums are
// accumulated after the tree. At the default QK_MULS = D = 64 one key is accepted per cycle.
//
// Ports:
//   query    D x 12-bit signed, element d in bits [12d+11 : 12d]. The core's query register:
//            it must stay stable while keys of the job are in the pipeline.
//   in_*     stream of k_eff vectors (same layout), valid/ready; in_last is carried to
//            out_last (the core marks the job's last key with it).
//   out_*    stream of scores, valid/ready, in input order.
//   clear    synchronous: drops every key in flight (job abort).
//
// Pipeline (global stall): every register advances when en = !out_valid || out_ready.
//   stage 0: the QK_MULS products (24 bits) of the current chunk, registered;
//   tree levels 1..LV (LV = log2 QK_MULS), a register after every even level below LV;
//   the remaining levels and the chunk accumulation feed the output register out_score.
// At the defaults (LV = 6): registers after the products, after level 2, after level 4 and
// out_score after levels 5-6: a key accepted at clock edge n (presented in the cycle ending
// there) has its score on out_score (out_valid = 1) right after edge n+3, i.e. 4 cycles after
// the cycle it was presented in. At QK_MULS = 32 (LV = 5: registers after the products and
// levels 2 and 4, then level 5 + accumulation into out_score) the same counted from the key's
// last chunk, the key's first chunk entering one cycle earlier.
// in_ready = en && (last chunk of the key): one AND from out_ready (the whole pipeline stalls
// while the output is held; no bubble is lost, so one key per cycle with out_ready high).
// QK_MULS must be a power of two dividing D (tested: 64 and 32 at D = 64).
module spatten_dot_product #(
    parameter integer D       = 64,
    parameter integer QK_MULS = 64
) (
    input  wire                           clk,
    input  wire                           rst_n,
    input  wire                           clear,
    input  wire [D*12-1:0]                query,
    input  wire                           in_valid,
    output wire                           in_ready,
    input  wire [D*12-1:0]                in_k,
    input  wire                           in_last,
    output reg                            out_valid,
    input  wire                           out_ready,
    output reg  signed [24+$clog2(D)-1:0] out_score,
    output reg                            out_last
);
    localparam integer NCH = D / QK_MULS;                   // passes per key
    localparam integer LV  = $clog2(QK_MULS);               // adder tree levels
    localparam integer PW  = 24;                            // product width
    localparam integer SW  = 24 + $clog2(D);                // score width
    localparam integer CW  = (NCH > 1) ? $clog2(NCH) : 1;   // chunk counter width

    wire en = !out_valid || out_ready;

    // ------------------------------------------------------------------ input chunking
    reg  [CW-1:0] chunk;
    localparam integer  LAST_CHUNK_I = NCH - 1;
    localparam [CW-1:0] LAST_CHUNK = LAST_CHUNK_I[CW-1:0];
    wire          last_chunk = (chunk == LAST_CHUNK);
    assign in_ready = en && last_chunk;
    wire          in_step = en && in_valid;                 // one chunk enters the multipliers

    // ------------------------------------------------------------------ stage 0: products
    reg  [QK_MULS*PW-1:0] prod;
    reg                   prod_valid, prod_first, prod_last, prod_key_last;
    wire [QK_MULS*12-1:0] k_chunk, q_chunk;
    generate
        if (NCH > 1) begin : g_chunk
            assign k_chunk = in_k[chunk*(QK_MULS*12) +: QK_MULS*12];
            assign q_chunk = query[chunk*(QK_MULS*12) +: QK_MULS*12];
        end else begin : g_whole
            assign k_chunk = in_k;
            assign q_chunk = query;
        end
    endgenerate

    integer m;
    always @(posedge clk) begin
        if (!rst_n || clear) begin
            chunk <= {CW{1'b0}};
            prod <= {QK_MULS*PW{1'b0}};
            prod_valid <= 1'b0;
            prod_first <= 1'b0;
            prod_last <= 1'b0;
            prod_key_last <= 1'b0;
        end else if (en) begin
            prod_valid <= in_valid;
            prod_first <= (chunk == {CW{1'b0}});
            prod_last <= last_chunk;
            prod_key_last <= in_last;
            if (in_step) begin
                chunk <= last_chunk ? {CW{1'b0}} : chunk + 1'b1;
                for (m = 0; m < QK_MULS; m = m + 1)
                    prod[m*PW +: PW] <= $signed(q_chunk[m*12 +: 12])
                                      * $signed(k_chunk[m*12 +: 12]);
            end
        end
    end

    // ------------------------------------------------------------------ adder tree
    // Level l has QK_MULS >> l sums of PW + l bits, lv[l].s; tags v (valid), f (first chunk),
    // c (last chunk), k (last key).
    genvar l, i;
    generate
        for (l = 0; l <= LV; l = l + 1) begin : lv
            localparam integer N = QK_MULS >> l;
            localparam integer W = PW + l;
            wire [N*W-1:0] s;
            wire           v, f, c, k;
            if (l == 0) begin : g_leaf
                assign s = prod;
                assign v = prod_valid;
                assign f = prod_first;
                assign c = prod_last;
                assign k = prod_key_last;
            end else begin : g_node
                wire [N*W-1:0] sum;
                for (i = 0; i < N; i = i + 1) begin : add
                    wire [W-2:0] a = lv[l-1].s[(2*i)*(W-1) +: W-1];
                    wire [W-2:0] b = lv[l-1].s[(2*i+1)*(W-1) +: W-1];
                    assign sum[i*W +: W] = {a[W-2], a} + {b[W-2], b};
                end
                if ((l % 2) == 0 && l < LV) begin : g_reg
                    reg [N*W-1:0] r;
                    reg           rv, rf, rc, rk;
                    always @(posedge clk) begin
                        if (!rst_n || clear) begin
                            r <= {N*W{1'b0}};
                            rv <= 1'b0;
                            rf <= 1'b0;
                            rc <= 1'b0;
                            rk <= 1'b0;
                        end else if (en) begin
                            if (lv[l-1].v)
                                r <= sum;
                            rv <= lv[l-1].v;
                            rf <= lv[l-1].f;
                            rc <= lv[l-1].c;
                            rk <= lv[l-1].k;
                        end
                    end
                    assign s = r;
                    assign v = rv;
                    assign f = rf;
                    assign c = rc;
                    assign k = rk;
                end else begin : g_comb
                    assign s = sum;
                    assign v = lv[l-1].v;
                    assign f = lv[l-1].f;
                    assign c = lv[l-1].c;
                    assign k = lv[l-1].k;
                end
            end
        end
    endgenerate

    // ------------------------------------------------------------------ chunk accumulation
    wire signed [PW+LV-1:0] tree_sum = lv[LV].s;
    wire signed [SW-1:0]    partial;
    generate
        if (NCH > 1) begin : g_acc
            reg signed [SW-1:0] acc;
            // Explicit sign extension: the operands are mixed-sign, so keep it all unsigned.
            assign partial = (lv[LV].f ? {SW{1'b0}} : acc)
                           + {{(SW-PW-LV){tree_sum[PW+LV-1]}}, tree_sum};
            always @(posedge clk) begin
                if (!rst_n || clear)
                    acc <= {SW{1'b0}};
                else if (en && lv[LV].v)
                    acc <= partial;
            end
        end else begin : g_noacc
            assign partial = tree_sum;
            // One pass per key: the first-chunk tag is always set and has no use here
            // (Verilator's -Wall ignores signals named *unused*).
            wire unused_first = lv[LV].f;
        end
    endgenerate

    always @(posedge clk) begin
        if (!rst_n || clear) begin
            out_valid <= 1'b0;
            out_score <= {SW{1'b0}};
            out_last <= 1'b0;
        end else if (en) begin
            out_valid <= lv[LV].v && lv[LV].c;
            if (lv[LV].v && lv[LV].c) begin
                out_score <= partial;
                out_last <= lv[LV].k;
            end
        end
    end
endmodule
