// SpAtten core top level: job controller + datapath (docs/architecture.md sections 2, 3, 5-8;
// reference models/core.py SpAttenCoreModel.run_job, whose order of operations it follows).
//
// Ports: desc_valid/desc_ready/desc_data (descriptor_fields(), LSB first, 1012 bits at the
// defaults), res_valid/res_ready/res_data (result_fields(), LSB first, 1411 bits), and the
// fetcher's flattened AXI4 read channels m_axi_*. One job at a time: desc_ready is high only in
// IDLE; res_valid holds the result until res_ready. State readback dbg_req/dbg_heads/dbg_n,
// dbg_valid/dbg_ready/dbg_imp/dbg_kept/dbg_last (section 10): in IDLE a dbg_req (priority over
// desc_valid; desc_ready = IDLE && !dbg_req) runs the prune state's scan with scan_all = 1 and
// streams 32-entry chunks (importance + kept bit), then waits for dbg_req low (S_DBG_*).
//
// Job flow (one FSM, sequential phases):
//   CHECK   descriptor validation (BAD_HEAD, NO_TOKENS, TOO_MANY_TOKENS, BAD_WIDTH, BAD_ADDR, in
//           that order, = Job.validate()); invalid -> result with zeros, no state change.
//   CLR     clear_tokens / clear_heads / reselect / rescale (imp_shift > 0) requests to
//           spatten_prune_state, taken in one edge (section 7 steps 2-4; the rescale scan then
//           runs inside the prune state and the next phase waits for its op_ready).
//   prune   (head_keep, then token_keep) scan kept entries < n -> top-k engine (position,
//           {protected, importance}: the protected bit of section 7 step 6 is the engine's
//           33rd value bit, 0 for heads) + position->index list; keep < count: top-k(n=count, k=keep) winners ->
//           prune_state winner stream (positions mapped back to indices).
//   HEADCHK head_kept[head_id] = 0 -> HEAD_SKIPPED.
//   KEYS    scan kept tokens < n_tokens -> key list (position -> token), m = count (0: NO_TOKENS).
//   pass    MSB pass, then (lsb_bits > 0 and max_prob_msb < requant_thresh) LSB pass: fetcher
//           fed from the key list -> plane_unpack -> stage register (K-code buffer write of the
//           MSB codes / synchronous read of the stored MSB codes for the LSB pass) ->
//           reconstruct -> dot_product -> softmax -> prob buffer and top-k engine load.
//   VSEL    v_topk in 1..m-1: top-k(n=m, k=v_topk) over the final probabilities -> V list.
//   V pass  fetcher fed with key[vlist[i]] -> unpack -> stage (prob of the same position) ->
//           reconstruct -> pv_accum -> out, abs_sum.
//   ACC     token importance accumulate (key[pos], prob[pos]); head accumulate (head_id, abs_sum).
//   RESULT  res_valid until res_ready.
// AXI errors: a fetch ending with error != 0 aborts the job (AXI_SLVERR 7 / AXI_DECERR 8, zero
// outputs, no accumulation). The softmax is not modified: during a K pass the controller clears
// the unpacker and dot-product pipelines and feeds the softmax zero scores until it has its n
// scores, then drains (and discards) its probabilities, so it ends idle.
// The small lists (key list, V list, prob buffer) are read combinationally (distributed RAM);
// the K-code buffer (L_MAX x D*12 bits) has a synchronous read.
// Only the default geometry (D = 64, L_MAX = 1024, H_MAX = 32, AXI 256 bits, 32-bit addresses;
// N_CH = 1, 2, 4 or 8) is supported by the descriptor/result offsets below: other values fail
// elaboration.
module spatten_core #(
    parameter integer D      = 64,
    parameter integer L_MAX  = 1024,
    parameter integer H_MAX  = 32,
    parameter integer N_CH   = 1,
    parameter integer AXI_DW = 256,
    parameter integer AW     = 32,
    parameter integer DESC_W = 1012,
    parameter integer RES_W  = 1411
) (
    input  wire                 clk,
    input  wire                 rst_n,
    input  wire                 desc_valid,
    output wire                 desc_ready,
    input  wire [DESC_W-1:0]    desc_data,
    output wire                 res_valid,
    input  wire                 res_ready,
    output wire [RES_W-1:0]     res_data,
    output wire [N_CH-1:0]      m_axi_arvalid,
    input  wire [N_CH-1:0]      m_axi_arready,
    output wire [N_CH*AW-1:0]   m_axi_araddr,
    output wire [N_CH*8-1:0]    m_axi_arlen,
    output wire [N_CH*3-1:0]    m_axi_arsize,
    output wire [N_CH*2-1:0]    m_axi_arburst,
    input  wire [N_CH-1:0]      m_axi_rvalid,
    output wire [N_CH-1:0]      m_axi_rready,
    input  wire [N_CH*AXI_DW-1:0] m_axi_rdata,
    input  wire [N_CH*2-1:0]    m_axi_rresp,
    input  wire [N_CH-1:0]      m_axi_rlast,
    // state readback (docs/architecture.md section 10)
    input  wire                 dbg_req,
    input  wire                 dbg_heads,
    input  wire [$clog2(L_MAX+1)-1:0] dbg_n,
    output wire                 dbg_valid,
    input  wire                 dbg_ready,
    output wire [32*32-1:0]     dbg_imp,
    output wire [31:0]          dbg_kept,
    output wire                 dbg_last
);
    localparam integer LB = $clog2(L_MAX);
    localparam integer TB = $clog2(L_MAX + 1);
    localparam integer HB = (H_MAX > 1) ? $clog2(H_MAX) : 1;

    // The descriptor/result offsets below are those of the default geometry; anything else is
    // an elaboration error (a missing module: Verilog-2005 has no $error), not a silently
    // misread descriptor. N_CH: the read channels the fetcher and the environment support.
    generate
        if (D != 64 || L_MAX != 1024 || H_MAX != 32 || AXI_DW != 256 || AW != 32 ||
            DESC_W != 1012 || RES_W != 1411 ||
            !(N_CH == 1 || N_CH == 2 || N_CH == 4 || N_CH == 8)) begin : unsupported
            spatten_core_unsupported_parameters see_docs_architecture_section_1 ();
        end
    endgenerate

    // ------------------------------------------------------------------ states
    localparam [4:0] S_IDLE = 5'd0, S_CHECK = 5'd1, S_CLR = 5'd2, S_PR_SCAN = 5'd3,
                     S_PR_COLLECT = 5'd4, S_PR_BEGIN = 5'd5, S_PR_WIN = 5'd6,
                     S_HEADCHK = 5'd7, S_PASS_START = 5'd8, S_PASS = 5'd9,
                     S_VSEL = 5'd10, S_VSEL_RUN = 5'd11, S_V = 5'd12,
                     S_ACC_T = 5'd13, S_ACC_H = 5'd14, S_RESULT = 5'd15, S_NEXT = 5'd16,
                     S_DBG_SCAN = 5'd17, S_DBG_COL = 5'd18, S_DBG_OUT = 5'd19,
                     S_DBG_END = 5'd20;

    reg [4:0] state;
    reg [DESC_W-1:0] desc;

    // descriptor fields (descriptor_fields(), LSB first)
    wire [15:0] d_job_id    = desc[15:0];
    wire [4:0]  d_head_id   = desc[20:16];
    wire [5:0]  d_n_heads   = desc[26:21];
    wire [10:0] d_n_tokens  = desc[37:27];
    wire [3:0]  d_msb       = desc[41:38];
    wire [3:0]  d_lsb       = desc[45:42];
    wire [3:0]  d_vbits     = desc[49:46];
    wire [15:0] d_mult      = desc[65:50];
    wire [5:0]  d_shift     = desc[71:66];
    wire [15:0] d_thresh    = desc[87:72];
    wire [10:0] d_v_topk    = desc[98:88];
    wire [10:0] d_tok_keep  = desc[109:99];
    wire [5:0]  d_head_keep = desc[115:110];
    wire        d_clr_tok   = desc[116];
    wire        d_clr_head  = desc[117];
    wire        d_acc_tok   = desc[118];
    wire        d_acc_head  = desc[119];
    wire [31:0] d_kmsb      = desc[151:120];
    wire [31:0] d_klsb      = desc[183:152];
    wire [31:0] d_vbase     = desc[215:184];
    wire [D*12-1:0] d_query = desc[216 +: D*12];
    // per-step re-selection fields, after the query (section 2.1)
    localparam integer RS0 = 216 + D*12;
    wire        d_reselect  = desc[RS0];
    wire [4:0]  d_imp_shift = desc[RS0+1 +: 5];
    wire [10:0] d_prot_sink = desc[RS0+6 +: 11];
    wire [10:0] d_prot_rec  = desc[RS0+17 +: 11];

    // ------------------------------------------------------------------ validation
    function [1:0] stride_of;  // bus words per token, D = 64, AXI 256
        input [3:0] w;
        begin
            case (w)
                4'd4: stride_of = 2'd1;
                4'd6: stride_of = 2'd2;
                4'd8: stride_of = 2'd2;
                4'd12: stride_of = 2'd3;
                default: stride_of = 2'd0;
            endcase
        end
    endfunction
    function plane_w_ok;
        input [3:0] w;
        plane_w_ok = (w == 4'd4) || (w == 4'd6) || (w == 4'd8) || (w == 4'd12);
    endfunction
    function addr_bad;
        input [31:0] base;
        input [3:0]  w;
        input [10:0] n;
        reg [36:0] endp;
        begin
            // plane bytes rounded up to bus words; a dense 6-bit plane is ceil(1.5 n) words
            if (w == 4'd6)
                endp = {5'd0, base} + ((({26'd0, n} * 37'd3) + 37'd1) >> 1 << 5);
            else
                endp = {5'd0, base} + {26'd0, n} * {30'd0, stride_of(w), 5'd0};
            addr_bad = (base[4:0] != 5'd0) || (endp > 37'h1_0000_0000);
        end
    endfunction

    reg [3:0] v_status;
    always @(*) begin
        if (d_n_heads == 6'd0 || {26'd0, d_n_heads} > H_MAX || {1'b0, d_head_id} >= d_n_heads)
            v_status = 4'd6;
        else if (d_n_tokens == 11'd0)
            v_status = 4'd2;
        else if ({21'd0, d_n_tokens} > L_MAX)
            v_status = 4'd3;
        else if (!plane_w_ok(d_msb) || !plane_w_ok(d_vbits)
                 || !(d_lsb == 4'd0 || d_lsb == 4'd4 || d_lsb == 4'd6 || d_lsb == 4'd8)
                 || ({1'b0, d_msb} + {1'b0, d_lsb} > 5'd12))
            v_status = 4'd4;
        else if (addr_bad(d_kmsb, d_msb, d_n_tokens) || addr_bad(d_vbase, d_vbits, d_n_tokens)
                 || (d_lsb != 4'd0 && addr_bad(d_klsb, d_lsb, d_n_tokens)))
            v_status = 4'd5;
        else
            v_status = 4'd0;
    end

    // ------------------------------------------------------------------ job registers
    reg [3:0]   r_status;
    reg         r_lsb_fetched;
    reg [15:0]  r_max_msb, r_max;
    reg [10:0]  r_m, r_nv;
    reg [23:0]  r_beats;
    reg [31:0]  r_cycles, cyc;
    reg [D*16-1:0] r_out;
    reg [21:0]  r_abs;
    reg [1:0]   pr_mode;       // 0 heads prune, 1 tokens prune, 2 key list
    reg [10:0]  cnt;           // scan collect counter / list counters
    reg [1:0]   pass;          // 0 MSB, 1 LSB, 2 V
    reg         vsel;          // V list from top-k
    reg         err;           // AXI error seen in the current pass
    reg [10:0]  fi;            // feeder position
    reg [10:0]  op;            // output-side position
    reg         clr_pipe;

    // lists
    reg [9:0]  klist [0:L_MAX-1];
    reg [9:0]  vlist [0:L_MAX-1];
    reg [15:0] pbuf  [0:L_MAX-1];
    reg [D*12-1:0] kbuf [0:L_MAX-1];
    reg [D*12-1:0] kbuf_q;

    // ------------------------------------------------------------------ prune state
    // Status/debug outputs of the sub-blocks that the controller does not need (top-k thr/ties/
    // pass monitor, softmax statistics other than max_prob, busy flags, *_last flags) are left
    // unconnected in effect: waived for the instance wires declared from here to the pv section.
    /* verilator lint_off UNUSEDSIGNAL */
    wire        ps_op_ready, ps_scan_ready;
    wire        ps_scan_valid, ps_scan_last, ps_scan_done, ps_win_ready;
    wire [LB-1:0] ps_scan_idx;
    wire [31:0] ps_scan_imp;
    wire [TB-1:0] ps_scan_count;
    wire        ps_tacc_ready, ps_hacc_ready, ps_head_kept;
    wire [31:0] ps_head_imp;
    wire        ps_tok_kept;
    wire [H_MAX-1:0] ps_head_map;

    wire ps_clear_t = (state == S_CLR) && d_clr_tok;
    wire ps_clear_h = (state == S_CLR) && d_clr_head;
    wire ps_reselect = (state == S_CLR) && d_reselect;
    wire ps_rescale = (state == S_CLR) && (d_imp_shift != 5'd0);
    // state readback (section 10): the scan runs with scan_all = 1 and the dbg_* arguments
    wire dbg_scan = (state == S_DBG_SCAN);
    wire ps_scan_start = (state == S_PR_SCAN) || dbg_scan;
    reg         dbg_h;         // dbg_heads / dbg_n sampled at the request edge
    reg  [10:0] dbg_nq;
    wire ps_scan_heads = dbg_scan ? dbg_h : (pr_mode == 2'd0);
    wire ps_prune_heads = (pr_mode == 2'd0);
    wire [10:0] ps_pr_n = (pr_mode == 2'd0) ? {5'd0, d_n_heads} : d_n_tokens;
    wire [10:0] ps_n = dbg_scan ? dbg_nq : ps_pr_n;
    wire ps_prune_begin = (state == S_PR_BEGIN);
    wire [10:0] keep_n = (pr_mode == 2'd0) ? {5'd0, d_head_keep} : d_tok_keep;

    // ------------------------------------------------------------------ top-k
    wire        tk_busy, tk_out_valid, tk_out_last, tk_done;
    wire [LB-1:0] tk_out_index;
    wire [32:0] tk_thr;
    wire [LB:0] tk_ties, tk_passes, tk_pm, tk_pc;
    wire [31:0] tk_cycles;
    wire        tk_pv;
    reg         tk_start;
    reg [10:0]  tk_n, tk_k;
    wire        sm_prob_valid;
    wire [15:0] sm_prob_data;
    wire [LB-1:0] sm_prob_index;
    wire        tk_load_valid = (state == S_PR_COLLECT) ? (ps_scan_valid) :
                                (state == S_PASS) ? (sm_prob_valid && !err) : 1'b0;
    wire [LB-1:0] tk_load_index = (state == S_PR_COLLECT) ? cnt[LB-1:0] : sm_prob_index;
    // token prune: protected = t < protect_sink or t >= n_tokens - protect_recent (section 7
    // step 6), ranked above every unprotected token through the value's top bit
    wire        tk_protected = (pr_mode == 2'd1) &&
                               (({1'b0, ps_scan_idx} < d_prot_sink) ||
                                ({2'b0, ps_scan_idx} + {1'b0, d_prot_rec} >= {1'b0, d_n_tokens}));
    wire [32:0] tk_load_value = (state == S_PR_COLLECT) ? {tk_protected, ps_scan_imp}
                                                        : {17'd0, sm_prob_data};
    wire        tk_out_ready = (state == S_PR_WIN) ? ps_win_ready : (state == S_VSEL_RUN);

    spatten_topk #(.L_MAX(L_MAX), .VALUE_BITS(33), .TOPK_CMPS(16)) u_topk (
        .clk(clk), .rst_n(rst_n),
        .load_valid(tk_load_valid), .load_index(tk_load_index), .load_value(tk_load_value),
        .start(tk_start), .n(tk_n), .k(tk_k), .busy(tk_busy),
        .out_valid(tk_out_valid), .out_ready(tk_out_ready), .out_index(tk_out_index),
        .out_last(tk_out_last), .done(tk_done), .thr(tk_thr), .ties(tk_ties),
        .passes(tk_passes), .cycles(tk_cycles), .pass_valid(tk_pv), .pass_m(tk_pm),
        .pass_cycles(tk_pc)
    );

    wire ps_win_valid = (state == S_PR_WIN) && tk_out_valid;
    wire [LB-1:0] ps_win_idx = klist[tk_out_index];
    wire ps_tacc_valid = (state == S_ACC_T) && d_acc_tok;
    wire ps_hacc_valid = (state == S_ACC_H) && d_acc_head;

    spatten_prune_state #(.L_MAX(L_MAX), .H_MAX(H_MAX)) u_prune (
        .clk(clk), .rst_n(rst_n),
        .op_ready(ps_op_ready), .clear_tokens(ps_clear_t), .clear_heads(ps_clear_h),
        .reselect(ps_reselect), .reselect_n(d_n_tokens), .rescale(ps_rescale),
        .rescale_shift(d_imp_shift),
        .scan_start(ps_scan_start), .scan_heads(ps_scan_heads), .scan_all(dbg_scan),
        .scan_n(ps_n), .prune_begin(ps_prune_begin), .prune_heads(ps_prune_heads),
        .prune_n(ps_pr_n),
        .tacc_valid(ps_tacc_valid), .tacc_ready(ps_tacc_ready),
        .tacc_idx(klist[op[LB-1:0]]), .tacc_prob(pbuf[op[LB-1:0]]),
        .hacc_valid(ps_hacc_valid), .hacc_ready(ps_hacc_ready), .hacc_idx(d_head_id[HB-1:0]),
        .hacc_val(r_abs),
        .scan_valid(ps_scan_valid), .scan_ready(ps_scan_ready), .scan_idx(ps_scan_idx),
        .scan_imp(ps_scan_imp), .scan_last(ps_scan_last), .scan_done(ps_scan_done),
        .scan_count(ps_scan_count),
        .win_valid(ps_win_valid), .win_ready(ps_win_ready), .win_idx(ps_win_idx),
        .win_last(tk_out_last), .prune_end(1'b0),
        .rd_head_id(d_head_id[HB-1:0]), .rd_head_kept(ps_head_kept), .rd_head_imp(ps_head_imp),
        .rd_token_idx(ps_scan_idx), .rd_token_kept(ps_tok_kept), .head_kept_map(ps_head_map)
    );

    // ------------------------------------------------------------------ fetcher
    wire [3:0] u_width = (pass == 2'd0) ? d_msb : (pass == 2'd1) ? d_lsb : d_vbits;
    reg         f_start;
    reg [31:0]  f_base;
    reg [1:0]   f_stride;
    wire        f_busy, f_done;
    wire [1:0]  f_error;
    wire [23:0] f_beats;
    wire        in_pass = (state == S_PASS) || (state == S_V);
    wire [10:0] f_cnt = (pass == 2'd2) ? r_nv : r_m;
    wire        f_idx_valid = in_pass && (fi < f_cnt);
    wire        f_idx_ready;
    wire [9:0]  f_pos = (pass == 2'd2 && vsel) ? vlist[fi[LB-1:0]] : fi[9:0];
    wire [9:0]  f_idx_token = klist[f_pos];
    wire        f_beat_valid, f_beat_ready;
    wire [AXI_DW-1:0] f_beat_data;
    wire [1:0]  f_beat_phase;
    wire        f_dense_w6 = (u_width == 4'd6);  // latched by the fetcher at f_start

    spatten_fetcher #(.AW(AW), .DW(AXI_DW), .N_CH(N_CH), .MAX_BURST(16), .MAX_OUTSTANDING(8),
                      .TOK_BITS(10)) u_fetch (
        .clk(clk), .rst_n(rst_n), .start(f_start), .base(f_base), .stride_beats(f_stride),
        .dense_w6(f_dense_w6),
        .busy(f_busy), .done(f_done), .error(f_error), .beats(f_beats),
        .idx_valid(f_idx_valid), .idx_ready(f_idx_ready), .idx_token(f_idx_token),
        .idx_last(fi == f_cnt - 11'd1),
        .m_axi_arvalid(m_axi_arvalid), .m_axi_arready(m_axi_arready),
        .m_axi_araddr(m_axi_araddr), .m_axi_arlen(m_axi_arlen), .m_axi_arsize(m_axi_arsize),
        .m_axi_arburst(m_axi_arburst), .m_axi_rvalid(m_axi_rvalid),
        .m_axi_rready(m_axi_rready), .m_axi_rdata(m_axi_rdata), .m_axi_rresp(m_axi_rresp),
        .m_axi_rlast(m_axi_rlast),
        .beat_valid(f_beat_valid), .beat_ready(f_beat_ready), .beat_data(f_beat_data),
        .beat_phase(f_beat_phase)
    );

    // ------------------------------------------------------------------ unpack + stage
    wire       u_out_valid, u_out_last;
    wire [D*12-1:0] u_codes;
    reg        s_valid;
    reg [D*12-1:0] s_codes;
    reg [15:0] s_prob;
    reg [10:0] s_pos;
    wire       down_ready;
    wire       u_out_ready = (!s_valid || down_ready) && !err;
    wire       cap = u_out_valid && u_out_ready;

    spatten_plane_unpack #(.D(D), .AXI_DW(AXI_DW)) u_unpack (
        .clk(clk), .rst_n(rst_n), .clear(clr_pipe), .cfg_width(u_width),
        .cfg_signed(pass != 2'd1), .in_valid(f_beat_valid), .in_ready(f_beat_ready),
        .in_data(f_beat_data), .in_last(1'b0), .in_phase(f_beat_phase),
        .out_valid(u_out_valid),
        .out_ready(u_out_ready), .out_codes(u_codes), .out_last(u_out_last)
    );

    wire [9:0] op_pos = (pass == 2'd2 && vsel) ? vlist[op[LB-1:0]] : op[9:0];

    always @(posedge clk) begin
        if (cap && pass == 2'd0) kbuf[op[LB-1:0]] <= u_codes;
        if (cap) kbuf_q <= kbuf[op[LB-1:0]];
    end

    wire [D*12-1:0] rc_x;
    spatten_reconstruct #(.D(D)) u_rc (
        .msb_bits((pass == 2'd2) ? d_vbits : d_msb),
        .lsb_bits((pass == 2'd1) ? d_lsb : 4'd0),
        .msb_codes((pass == 2'd1) ? kbuf_q : s_codes),
        .lsb_codes(s_codes),
        .x_eff(rc_x)
    );

    // ------------------------------------------------------------------ dot + softmax
    wire dp_in_ready, dp_out_valid, dp_out_last;
    wire signed [29:0] dp_score;
    wire sm_score_ready, sm_busy, sm_done, sm_prob_last, sm_stats_valid;
    wire [15:0] sm_max_prob;
    wire [LB-1:0] sm_max_index;
    wire [25:0] sm_exp_sum, sm_recip;
    reg  sm_start;
    wire dp_in_valid = s_valid && (pass != 2'd2) && !err;

    spatten_dot_product #(.D(D), .QK_MULS(64)) u_dot (
        .clk(clk), .rst_n(rst_n), .clear(clr_pipe), .query(d_query),
        .in_valid(dp_in_valid), .in_ready(dp_in_ready), .in_k(rc_x),
        .in_last(s_pos == r_m - 11'd1), .out_valid(dp_out_valid),
        .out_ready(sm_score_ready && !err), .out_score(dp_score), .out_last(dp_out_last)
    );

    spatten_softmax #(.L_MAX(L_MAX)) u_sm (
        .clk(clk), .rst_n(rst_n), .start(sm_start), .n_tokens(r_m), .score_mult(d_mult),
        .score_shift(d_shift), .busy(sm_busy), .done(sm_done),
        .score_valid(err ? 1'b1 : dp_out_valid), .score_ready(sm_score_ready),
        .score_data(err ? 30'd0 : dp_score),
        .prob_valid(sm_prob_valid), .prob_ready(1'b1), .prob_data(sm_prob_data),
        .prob_index(sm_prob_index), .prob_last(sm_prob_last),
        .stats_valid(sm_stats_valid), .max_prob(sm_max_prob), .max_index(sm_max_index),
        .exp_sum(sm_exp_sum), .recip(sm_recip)
    );

    /* verilator lint_on UNUSEDSIGNAL */
    // ------------------------------------------------------------------ pv accumulate
    wire pv_in_ready, pv_out_valid;
    wire [D*16-1:0] pv_out;
    wire [21:0] pv_abs;
    spatten_pv_accum #(.D(D), .ACC_BITS(32)) u_pv (
        .clk(clk), .rst_n(rst_n), .clear(clr_pipe),
        .in_valid(s_valid && pass == 2'd2 && !err), .in_ready(pv_in_ready),
        .in_prob(s_prob), .in_value(rc_x), .in_last(s_pos == r_nv - 11'd1),
        .out_valid(pv_out_valid), .out_ready(1'b1), .out_data(pv_out), .out_abs_sum(pv_abs)
    );

    assign down_ready = (pass == 2'd2) ? pv_in_ready : dp_in_ready;

    // ------------------------------------------------------------------ state readback
    // S_DBG_SCAN: scan request (scan_all) until taken; S_DBG_COL: scan entries are written into
    // the 32-entry window (position = index mod 32) until the entry with index mod 32 = 31 or
    // the scan's last entry (an empty scan: its scan_done); S_DBG_OUT: the window is presented
    // on dbg_* until dbg_ready, then cleared; S_DBG_END: wait for dbg_req low.
    reg [32*32-1:0] dbg_win_imp;
    reg [31:0]      dbg_win_kept;
    reg             dbg_win_last;
    wire [4:0]      dbg_pos = ps_scan_idx[4:0];
    wire            dbg_entry_kept = dbg_h ? ps_head_map[ps_scan_idx[HB-1:0]] : ps_tok_kept;
    wire            dbg_take = (state == S_DBG_COL) && ps_scan_valid;
    assign ps_scan_ready = (state == S_PR_COLLECT) || (state == S_DBG_COL);
    assign dbg_valid = (state == S_DBG_OUT);
    assign dbg_imp   = dbg_win_imp;
    assign dbg_kept  = dbg_win_kept;
    assign dbg_last  = dbg_win_last;

    wire dbg_clr = !rst_n || (dbg_valid && dbg_ready);
    genvar gw;
    generate
        for (gw = 0; gw < 32; gw = gw + 1) begin : g_dbg_win
            always @(posedge clk) begin
                if (dbg_clr) begin
                    dbg_win_imp[gw*32 +: 32] <= 32'd0;
                    dbg_win_kept[gw] <= 1'b0;
                end else if (dbg_take && dbg_pos == gw) begin
                    dbg_win_imp[gw*32 +: 32] <= ps_scan_imp;
                    dbg_win_kept[gw] <= dbg_entry_kept;
                end
            end
        end
    endgenerate
    always @(posedge clk) begin
        if (dbg_clr)
            dbg_win_last <= 1'b0;
        else if (dbg_take)
            dbg_win_last <= ps_scan_last;
        else if (state == S_DBG_COL && ps_scan_done)
            dbg_win_last <= 1'b1;  // empty scan (n = 0): one all-zero chunk
    end

    // ------------------------------------------------------------------ result
    assign desc_ready = (state == S_IDLE) && !dbg_req;
    assign res_valid = (state == S_RESULT);
    assign res_data = {c_fetch_stall, c_fetch_busy, c_ctrl, c_v, c_topk, c_softmax, c_qk,
                       c_fetch_wait, r_out, r_cycles, r_beats, r_nv, r_m, r_max, r_max_msb,
                       r_lsb_fetched, r_status, d_job_id};

    // ------------------------------------------------------------------ stage counters
    // docs/architecture.md section 9. Every cycle counted by `cycles` (the edges in S_CHECK ..
    // S_NEXT) goes to exactly one of the six exclusive counters, in this priority:
    //   qk          the dot product takes a key (one per key and K pass at QK_MULS = D)
    //   v           the prob.V accumulator takes a value, or the V pass drains after its fetch
    //   fetch_wait  a K/V fetch is in progress and the datapath took nothing this cycle
    //   softmax     K pass after its fetch ended: last scores, normalisation, probabilities
    //   topk        head/token prune passes (their state scans included) and value selection
    //   ctrl        the rest: check, clear, head check, key list, pass start, accumulate, end
    // fetch_busy (in-pass cycles with the fetcher running) and fetch_stall (fetch_wait cycles
    // with no R beat at the fetcher's output: waiting on DRAM) overlap the six.
    // 32 bits like `cycles`: the six sum to it, so none can wrap before it does.
    wire        job_cyc   = ((state >= S_CHECK) && (state <= S_ACC_H)) || (state == S_NEXT);
    wire        qk_take   = dp_in_valid && dp_in_ready;
    wire        v_take    = s_valid && (pass == 2'd2) && !err && pv_in_ready;
    wire        fetch_on  = in_pass && f_busy;
    wire        is_qk     = qk_take;
    wire        is_v      = !qk_take && (v_take || (state == S_V && !f_busy));
    wire        is_fwait  = !qk_take && !v_take && fetch_on;
    wire        is_sm     = !qk_take && (state == S_PASS) && !f_busy;
    wire        is_topk   = ((state >= S_PR_SCAN && state <= S_PR_WIN) && pr_mode != 2'd2)
                            || state == S_VSEL || state == S_VSEL_RUN;
    wire        is_ctrl   = !(is_qk || is_v || is_fwait || is_sm || is_topk);
    wire        is_stall  = is_fwait && !f_beat_valid;
    reg  [31:0] c_fetch_wait, c_qk, c_softmax, c_topk, c_v, c_ctrl, c_fetch_busy, c_fetch_stall;
    wire        job_accept = (state == S_IDLE) && !dbg_req && desc_valid;
    always @(posedge clk) begin
        if (!rst_n || job_accept) begin
            c_fetch_wait <= 32'd0; c_qk <= 32'd0; c_softmax <= 32'd0; c_topk <= 32'd0;
            c_v <= 32'd0; c_ctrl <= 32'd0; c_fetch_busy <= 32'd0; c_fetch_stall <= 32'd0;
        end else if (job_cyc) begin
            c_qk <= c_qk + {31'd0, is_qk};
            c_v <= c_v + {31'd0, is_v};
            c_fetch_wait <= c_fetch_wait + {31'd0, is_fwait};
            c_softmax <= c_softmax + {31'd0, is_sm};
            c_topk <= c_topk + {31'd0, is_topk};
            c_ctrl <= c_ctrl + {31'd0, is_ctrl};
            c_fetch_busy <= c_fetch_busy + {31'd0, fetch_on};
            c_fetch_stall <= c_fetch_stall + {31'd0, is_stall};
        end
    end

    // ------------------------------------------------------------------ FSM
    always @(posedge clk) begin
        if (sm_prob_valid && !err && state == S_PASS) pbuf[sm_prob_index] <= sm_prob_data;
        if (state == S_PR_COLLECT && ps_scan_valid) klist[cnt[LB-1:0]] <= ps_scan_idx;
        if (state == S_VSEL_RUN && tk_out_valid) vlist[cnt[LB-1:0]] <= tk_out_index;
    end

    always @(posedge clk) begin
        if (!rst_n) begin
            state <= S_IDLE;
            desc <= {DESC_W{1'b0}};
            r_status <= 4'd0; r_lsb_fetched <= 1'b0; r_max_msb <= 16'd0; r_max <= 16'd0;
            r_m <= 11'd0; r_nv <= 11'd0; r_beats <= 24'd0; r_cycles <= 32'd0; cyc <= 32'd0;
            r_out <= {D*16{1'b0}}; r_abs <= 22'd0; pr_mode <= 2'd0; cnt <= 11'd0;
            pass <= 2'd0; vsel <= 1'b0; err <= 1'b0; fi <= 11'd0; op <= 11'd0;
            clr_pipe <= 1'b0; tk_start <= 1'b0; tk_n <= 11'd0; tk_k <= 11'd0;
            f_start <= 1'b0; f_base <= 32'd0; f_stride <= 2'd0; sm_start <= 1'b0;
            s_valid <= 1'b0; s_codes <= {D*12{1'b0}}; s_prob <= 16'd0; s_pos <= 11'd0;
            dbg_h <= 1'b0; dbg_nq <= 11'd0;
        end else begin
            tk_start <= 1'b0;
            f_start <= 1'b0;
            sm_start <= 1'b0;
            clr_pipe <= 1'b0;
            cyc <= cyc + 32'd1;
            // stage register (both passes)
            if (cap) begin
                s_valid <= 1'b1;
                s_codes <= u_codes;
                s_pos <= op;
                s_prob <= pbuf[op_pos];
                op <= op + 11'd1;
            end else if (s_valid && down_ready) begin
                s_valid <= 1'b0;
            end
            if (f_idx_valid && f_idx_ready) fi <= fi + 11'd1;
            // end of a fetch (any pass): count its beats; an AXI error drops the pass's data
            // and ends the job (a K pass ends once the softmax has drained, below)
            if (in_pass && f_done) begin
                r_beats <= r_beats + f_beats;
                if (f_error != 2'd0) begin
                    err <= 1'b1;
                    clr_pipe <= 1'b1;
                    s_valid <= 1'b0;
                    r_status <= (f_error == 2'd3) ? 4'd8 : 4'd7;
                    if (state == S_V) state <= S_NEXT;
                end
            end
            case (state)
                S_IDLE: if (dbg_req) begin
                    dbg_h <= dbg_heads;
                    dbg_nq <= dbg_n;
                    state <= S_DBG_SCAN;
                end else if (desc_valid) begin
                    desc <= desc_data;
                    cyc <= 32'd1;
                    state <= S_CHECK;
                end
                S_CHECK: begin
                    r_status <= v_status;
                    r_lsb_fetched <= 1'b0; r_max_msb <= 16'd0; r_max <= 16'd0;
                    r_m <= 11'd0; r_nv <= 11'd0; r_beats <= 24'd0;
                    r_out <= {D*16{1'b0}}; r_abs <= 22'd0;
                    if (v_status != 4'd0) state <= S_NEXT;
                    else if (d_clr_tok || d_clr_head || d_reselect || d_imp_shift != 5'd0)
                        state <= S_CLR;
                    else if (d_head_keep != 6'd0) begin pr_mode <= 2'd0; state <= S_PR_SCAN; end
                    else if (d_tok_keep != 11'd0) begin pr_mode <= 2'd1; state <= S_PR_SCAN; end
                    else state <= S_HEADCHK;
                end
                S_CLR: if (ps_op_ready) begin
                    if (d_head_keep != 6'd0) begin pr_mode <= 2'd0; state <= S_PR_SCAN; end
                    else if (d_tok_keep != 11'd0) begin pr_mode <= 2'd1; state <= S_PR_SCAN; end
                    else state <= S_HEADCHK;
                end
                S_PR_SCAN: if (ps_op_ready) begin
                    cnt <= 11'd0;
                    state <= S_PR_COLLECT;
                end
                S_PR_COLLECT: begin
                    if (ps_scan_valid) cnt <= cnt + 11'd1;
                    if (ps_scan_done) begin
                        if (pr_mode == 2'd2) begin
                            r_m <= ps_scan_count;
                            if (ps_scan_count == 11'd0) begin
                                r_status <= 4'd2;
                                state <= S_NEXT;
                            end else begin
                                pass <= 2'd0;
                                state <= S_PASS_START;
                            end
                        end else if (keep_n >= ps_scan_count) begin
                            if (pr_mode == 2'd0 && d_tok_keep != 11'd0) begin
                                pr_mode <= 2'd1; state <= S_PR_SCAN;
                            end else state <= S_HEADCHK;
                        end else begin
                            tk_start <= 1'b1;
                            tk_n <= ps_scan_count;
                            tk_k <= keep_n;
                            state <= S_PR_BEGIN;
                        end
                    end
                end
                S_PR_BEGIN: if (ps_op_ready) state <= S_PR_WIN;
                S_PR_WIN: if (tk_done) begin
                    if (pr_mode == 2'd0 && d_tok_keep != 11'd0) begin
                        pr_mode <= 2'd1; state <= S_PR_SCAN;
                    end else state <= S_HEADCHK;
                end
                S_HEADCHK: if (ps_op_ready) begin
                    if (!ps_head_kept) begin
                        r_status <= 4'd1;
                        state <= S_NEXT;
                    end else begin
                        pr_mode <= 2'd2;
                        state <= S_PR_SCAN;
                    end
                end
                S_PASS_START: begin  // start the fetch of `pass` (K MSB, K LSB or V)
                    f_start <= 1'b1;
                    f_base <= (pass == 2'd0) ? d_kmsb : (pass == 2'd1) ? d_klsb : d_vbase;
                    f_stride <= stride_of((pass == 2'd0) ? d_msb :
                                          (pass == 2'd1) ? d_lsb : d_vbits);
                    sm_start <= (pass != 2'd2);
                    clr_pipe <= 1'b1;
                    s_valid <= 1'b0;
                    fi <= 11'd0; op <= 11'd0; err <= 1'b0;
                    state <= (pass == 2'd2) ? S_V : S_PASS;
                end
                S_PASS: begin
                    if (sm_done) begin
                        if (err || (f_done && f_error != 2'd0)) begin
                            state <= S_NEXT;  // r_status already set (fetch ends first)
                        end else if (pass == 2'd0) begin
                            r_max_msb <= sm_max_prob;
                            r_max <= sm_max_prob;
                            if (d_lsb != 4'd0 && sm_max_prob < d_thresh) begin
                                pass <= 2'd1;
                                r_lsb_fetched <= 1'b1;
                                state <= S_PASS_START;
                            end else state <= S_VSEL;
                        end else begin
                            r_max <= sm_max_prob;
                            state <= S_VSEL;
                        end
                    end
                end
                S_VSEL: begin
                    cnt <= 11'd0;
                    if (d_v_topk != 11'd0 && d_v_topk < r_m) begin
                        vsel <= 1'b1;
                        r_nv <= d_v_topk;
                        tk_start <= 1'b1;
                        tk_n <= r_m;
                        tk_k <= d_v_topk;
                        state <= S_VSEL_RUN;
                    end else begin
                        vsel <= 1'b0;
                        r_nv <= r_m;
                        pass <= 2'd2;
                        state <= S_PASS_START;
                    end
                end
                S_VSEL_RUN: begin
                    if (tk_out_valid) cnt <= cnt + 11'd1;
                    if (tk_done) begin
                        pass <= 2'd2;
                        state <= S_PASS_START;
                    end
                end
                S_V: begin
                    if (pv_out_valid && !err) begin
                        r_out <= pv_out;
                        r_abs <= pv_abs;
                        op <= 11'd0;
                        state <= S_ACC_T;
                    end
                end
                S_ACC_T: begin
                    if (!d_acc_tok || (ps_tacc_ready && op == r_m - 11'd1)) state <= S_ACC_H;
                    if (ps_tacc_valid && ps_tacc_ready) op <= op + 11'd1;
                end
                S_ACC_H: if (!d_acc_head || ps_hacc_ready) state <= S_NEXT;
                S_NEXT: begin
                    if (r_status >= 4'd7) begin
                        r_out <= {D*16{1'b0}};
                        r_lsb_fetched <= 1'b0; r_max_msb <= 16'd0; r_max <= 16'd0;
                        r_m <= 11'd0; r_nv <= 11'd0;
                    end else if (r_status != 4'd0) begin
                        r_m <= 11'd0; r_nv <= 11'd0;
                    end
                    r_cycles <= cyc;
                    state <= S_RESULT;
                end
                S_RESULT: if (res_ready) state <= S_IDLE;
                S_DBG_SCAN: if (ps_op_ready) state <= S_DBG_COL;
                S_DBG_COL: begin
                    if ((dbg_take && (dbg_pos == 5'd31 || ps_scan_last)) || ps_scan_done)
                        state <= S_DBG_OUT;
                end
                S_DBG_OUT: if (dbg_ready) state <= dbg_win_last ? S_DBG_END : S_DBG_COL;
                S_DBG_END: if (!dbg_req) state <= S_IDLE;
                default: state <= S_IDLE;
            endcase
        end
    end
endmodule
