// Q·K dot-product array (docs/architecture.md, section 4.2; reference models/core.py:
// dot_products).
//
//   score = sum_d query[d] * k[d]       exact, SW = 24 + clog2(D) bits signed (30 at D = 64)
//
// QK_MULS 12x12 multipliers feed a binary adder tree. Two regimes:
//  * QK_MULS <= D (QK_MULS = D / 2^k): a key takes NCH = D/QK_MULS passes (cycles), chunk c
//    covering elements [c*QK_MULS, (c+1)*QK_MULS), and the chunk sums are accumulated after the
//    tree. At QK_MULS = D one key is accepted per cycle.
//  * QK_MULS = KPC*D, KPC in {2, 4, 8} keys per cycle (SpAtten's 512 multipliers at D = 64 are
//    KPC = 8): a beat of up to KPC keys is accepted per cycle; each key has its own D-leaf tree
//    (the trees are the lanes of one QK_MULS-leaf tree cut at level log2 D: adjacent leaves are
//    summed, so no sum crosses a key's boundary). The register placement is that of the
//    QK_MULS = D tree, so the latency is the same.
//
// Ports (KPC = QK_MULS/D when QK_MULS > D, else 1; CNTW = clog2(KPC+1), 1 bit at KPC = 1):
//   query     D x 12-bit signed, element d in bits [12d+11 : 12d]. The core's query register:
//             it must stay stable while keys of the job are in the pipeline.
//   in_*      stream of beats, valid/ready. in_k is KPC*D*12 bits, key j of the beat in bits
//             [j*D*12 +: D*12] (same element layout as query). in_count (CNTW bits) is the
//             number of valid keys in the beat, 1..KPC, packed from key 0; only the job's
//             last beat may carry fewer than KPC. At KPC = 1 in_count is ignored: drive it 1.
//             in_last is carried to out_last (the core marks the job's last beat with it).
//   out_*     stream of beats, valid/ready, in input order. out_score is KPC*SW bits, key j's
//             score in bits [j*SW +: SW]; lanes j >= out_count read 0. out_count is the beat's
//             in_count (always 1 at KPC = 1); out_last the beat's in_last.
//   clear     synchronous: drops every key in flight (job abort).
//
// Pipeline (global stall): every register advances when en = !out_valid || out_ready.
//   stage 0: the QK_MULS products (24 bits) of the current chunk / beat, registered;
//   tree levels 1..LV (LV = log2 of the leaves per key: QK_MULS at QK_MULS <= D, else
//   log2 D), a register after every even level below LV;
//   the remaining levels and the chunk accumulation feed the output register out_score.
// At QK_MULS = D = 64 and at every KPC > 1 (LV = 6): registers after the products, after
// level 2, after level 4 and out_score after levels 5-6: a beat accepted at clock edge n
// (presented in the cycle ending there) has its scores on out_score (out_valid = 1) right
// after edge n+3, i.e. 4 cycles after the cycle it was presented in, one beat per cycle. At
// QK_MULS = 32 (LV = 5: registers after the products and levels 2 and 4, then level 5 +
// accumulation into out_score) the same counted from the key's last chunk, the key's first
// chunk entering one cycle earlier.
// in_ready = en && (last chunk of the key): one AND from out_ready (the whole pipeline stalls
// while the output is held; no bubble is lost, so one beat per cycle with out_ready high).
// The unused lanes of a partial beat are masked at the output register (KPC*SW AND gates)
// rather than at the KPC*D*12 multiplier inputs.
// QK_MULS must be D/2^k or KPC*D with KPC a power of two (tested: 32, 64, 128, 512 at D = 64).
module spatten_dot_product #(
    parameter integer D       = 64,
    parameter integer QK_MULS = 64
) (
    // Port widths: KPC = (QK_MULS > D ? QK_MULS/D : 1), spelt out (the localparams below come
    // after the port list).
    input  wire                             clk,
    input  wire                             rst_n,
    input  wire                             clear,
    input  wire [D*12-1:0]                  query,
    input  wire                             in_valid,
    output wire                             in_ready,
    input  wire [(QK_MULS > D ? QK_MULS : D)*12-1:0]           in_k,        // KPC*D*12
    input  wire [$clog2((QK_MULS > D ? QK_MULS / D : 1)+1)-1:0] in_count,    // CNTW
    input  wire                             in_last,
    output reg                              out_valid,
    input  wire                             out_ready,
    output reg  signed [(QK_MULS > D ? QK_MULS / D : 1)*(24+$clog2(D))-1:0] out_score,
    output reg  [$clog2((QK_MULS > D ? QK_MULS / D : 1)+1)-1:0] out_count,   // CNTW
    output reg                              out_last
);
    localparam integer KPC  = (QK_MULS > D) ? QK_MULS / D : 1;   // keys per beat
    localparam integer LEAF = (QK_MULS > D) ? D : QK_MULS;       // tree leaves per key
    localparam integer NCH  = D / LEAF;                          // passes per key
    localparam integer LV   = $clog2(LEAF);                      // adder tree levels
    localparam integer PW   = 24;                                // product width
    localparam integer SW   = 24 + $clog2(D);                    // score width
    localparam integer TW   = PW + LV;                           // tree sum width
    localparam integer CW   = (NCH > 1) ? $clog2(NCH) : 1;       // chunk counter width
    localparam integer CNTW = $clog2(KPC + 1);                   // key count width

    wire en = !out_valid || out_ready;

    // ------------------------------------------------------------------ input chunking
    reg  [CW-1:0] chunk;
    localparam integer  LAST_CHUNK_I = NCH - 1;
    localparam [CW-1:0] LAST_CHUNK = LAST_CHUNK_I[CW-1:0];
    wire          last_chunk = (chunk == LAST_CHUNK);
    assign in_ready = en && last_chunk;
    wire          in_step = en && in_valid;                 // one chunk enters the multipliers

    // The beat's key count travels with it; one key per beat at KPC = 1 (in_count ignored).
    wire [CNTW-1:0] beat_count;
    generate
        if (KPC > 1) begin : g_count
            assign beat_count = in_count;
        end else begin : g_one
            assign beat_count = 1'b1;
            wire unused_in_count = ^in_count;
        end
    endgenerate

    // ------------------------------------------------------------------ stage 0: products
    reg  [QK_MULS*PW-1:0] prod;
    reg                   prod_valid, prod_first, prod_last, prod_key_last;
    reg  [CNTW-1:0]       prod_count;
    wire [QK_MULS*12-1:0] k_chunk, q_chunk;
    generate
        if (NCH > 1) begin : g_chunk
            assign k_chunk = in_k[chunk*(QK_MULS*12) +: QK_MULS*12];
            assign q_chunk = query[chunk*(QK_MULS*12) +: QK_MULS*12];
        end else begin : g_whole
            assign k_chunk = in_k;
            assign q_chunk = {KPC{query}};                  // every key meets the same query
        end
    endgenerate

    // The products as one value, so that `prod` takes one update per cycle: assigned slice
    // by slice, Icarus propagates each of the QK_MULS slice writes to every tree adder that
    // reads `prod` (QK_MULS^2/2 evaluations a cycle, seconds per cycle at KPC = 8).
    function [QK_MULS*PW-1:0] products;
        input [QK_MULS*12-1:0] qv, kv;
        integer m;
        begin
            for (m = 0; m < QK_MULS; m = m + 1)
                products[m*PW +: PW] = $signed(qv[m*12 +: 12]) * $signed(kv[m*12 +: 12]);
        end
    endfunction
    // Zero without a replication: one of 12288 bits (KPC = 8) is over Verilator's limit.
    localparam [QK_MULS*PW-1:0] PROD_ZERO = 0;

    always @(posedge clk) begin
        if (!rst_n || clear) begin
            chunk <= {CW{1'b0}};
            prod <= PROD_ZERO;
            prod_valid <= 1'b0;
            prod_first <= 1'b0;
            prod_last <= 1'b0;
            prod_key_last <= 1'b0;
            prod_count <= {CNTW{1'b0}};
        end else if (en) begin
            prod_valid <= in_valid;
            prod_first <= (chunk == {CW{1'b0}});
            prod_last <= last_chunk;
            prod_key_last <= in_last;
            prod_count <= beat_count;
            if (in_step) begin
                chunk <= last_chunk ? {CW{1'b0}} : chunk + 1'b1;
                prod <= products(q_chunk, k_chunk);
            end
        end
    end

    // ------------------------------------------------------------------ adder tree
    // Level l has QK_MULS >> l sums of PW + l bits, lv[l].s (KPC lanes of LEAF >> l sums;
    // sum i adds sums 2i and 2i+1 of the level below, which lie in the same lane as LEAF is a
    // power of two); tags v (valid), f (first chunk), c (last chunk), k (last beat),
    // n (keys in the beat).
    genvar l, i;
    generate
        for (l = 0; l <= LV; l = l + 1) begin : lv
            localparam integer N = QK_MULS >> l;
            localparam integer W = PW + l;
            wire [N*W-1:0]  s;
            wire            v, f, c, k;
            wire [CNTW-1:0] n;
            if (l == 0) begin : g_leaf
                assign s = prod;
                assign v = prod_valid;
                assign f = prod_first;
                assign c = prod_last;
                assign k = prod_key_last;
                assign n = prod_count;
            end else begin : g_node
                // The level's N sums as one function of the level below (one evaluation per
                // change in Icarus, rather than every adder on every change of any slice).
                function [N*W-1:0] pair_sums;
                    input [2*N*(W-1)-1:0] x;
                    integer p;
                    reg [W-2:0] a, b;
                    begin
                        for (p = 0; p < N; p = p + 1) begin
                            a = x[(2*p)*(W-1) +: W-1];
                            b = x[(2*p+1)*(W-1) +: W-1];
                            pair_sums[p*W +: W] = {a[W-2], a} + {b[W-2], b};
                        end
                    end
                endfunction
                wire [N*W-1:0] sum = pair_sums(lv[l-1].s);
                if ((l % 2) == 0 && l < LV) begin : g_reg
                    reg [N*W-1:0]  r;
                    reg            rv, rf, rc, rk;
                    reg [CNTW-1:0] rn;
                    always @(posedge clk) begin
                        if (!rst_n || clear) begin
                            r <= {N*W{1'b0}};
                            rv <= 1'b0;
                            rf <= 1'b0;
                            rc <= 1'b0;
                            rk <= 1'b0;
                            rn <= {CNTW{1'b0}};
                        end else if (en) begin
                            if (lv[l-1].v)
                                r <= sum;
                            rv <= lv[l-1].v;
                            rf <= lv[l-1].f;
                            rc <= lv[l-1].c;
                            rk <= lv[l-1].k;
                            rn <= lv[l-1].n;
                        end
                    end
                    assign s = r;
                    assign v = rv;
                    assign f = rf;
                    assign c = rc;
                    assign k = rk;
                    assign n = rn;
                end else begin : g_comb
                    assign s = sum;
                    assign v = lv[l-1].v;
                    assign f = lv[l-1].f;
                    assign c = lv[l-1].c;
                    assign k = lv[l-1].k;
                    assign n = lv[l-1].n;
                end
            end
        end
    endgenerate

    // ------------------------------------------------------------------ chunk accumulation
    // score_next: the KPC scores of the beat leaving the tree, lanes >= its count zeroed.
    wire [KPC*SW-1:0] score_next;
    generate
        if (NCH > 1) begin : g_acc
            wire signed [TW-1:0] tree_sum = lv[LV].s;
            reg  signed [SW-1:0] acc;
            // Explicit sign extension: the operands are mixed-sign, so keep it all unsigned.
            wire signed [SW-1:0] partial = (lv[LV].f ? {SW{1'b0}} : acc)
                                         + {{(SW-TW){tree_sum[TW-1]}}, tree_sum};
            always @(posedge clk) begin
                if (!rst_n || clear)
                    acc <= {SW{1'b0}};
                else if (en && lv[LV].v)
                    acc <= partial;
            end
            assign score_next = partial;
        end else if (KPC == 1) begin : g_noacc
            assign score_next = lv[LV].s;                   // TW = SW: LEAF = D
            // One pass per key: the first-chunk tag is always set and has no use here
            // (Verilator's -Wall ignores signals named *unused*).
            wire unused_first = lv[LV].f;
        end else begin : g_lanes
            for (i = 0; i < KPC; i = i + 1) begin : lane
                localparam [CNTW-1:0] J = i;
                assign score_next[i*SW +: SW] = (lv[LV].n > J) ? lv[LV].s[i*SW +: SW]
                                                               : {SW{1'b0}};
            end
            wire unused_first = lv[LV].f;
        end
    endgenerate

    always @(posedge clk) begin
        if (!rst_n || clear) begin
            out_valid <= 1'b0;
            out_score <= {KPC*SW{1'b0}};
            out_count <= {CNTW{1'b0}};
            out_last <= 1'b0;
        end else if (en) begin
            out_valid <= lv[LV].v && lv[LV].c;
            if (lv[LV].v && lv[LV].c) begin
                out_score <= score_next;
                out_count <= lv[LV].n;
                out_last <= lv[LV].k;
            end
        end
    end
endmodule
