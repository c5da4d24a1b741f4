// SpAtten core top level: job controller + datapath (docs/architecture.md sections 2, 3, 5-8;
// reference models/core.py SpAttenCoreModel.run_job, whose order of operations it follows).
//
// Ports: desc_valid/desc_ready/desc_data (descriptor_fields(), LSB first, 1012 bits at the
// defaults), res_valid/res_ready/res_data (result_fields(), LSB first, 1411 bits), and the
// flattened AXI4 read channels m_axi_* (shared by the K and V fetchers through
// spatten_axi_read_arbiter). State readback dbg_req/dbg_heads/dbg_n,
// dbg_valid/dbg_ready/dbg_imp/dbg_kept/dbg_last (section 10): in IDLE with stage B empty a
// dbg_req (priority over desc_valid; desc_ready = IDLE && !dbg_req) runs the prune state's scan
// with scan_all = 1 and streams 32-entry chunks (importance + kept bit), then waits for dbg_req
// low (S_DBG_*).
//
// Two jobs in flight (section 11): stage A (`state`, the job in `desc`) runs CHECK .. the last
// softmax and hands the job to stage B (`bstate`: value selection, V pass, accumulation,
// result) when B is empty; desc_ready rises the cycle after the handoff. A job that changes the pruning state
// waits in CHECK until B is empty. The key list, value list and probability buffer have two
// banks (A writes one, B reads the other).
//
// Job flow (A: CHECK .. VSEL decision, HAND; B: value selection, V pass .. RESULT):
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
//   VSEL    decides the value selection (v_topk in 1..m-1); the selection runs in stage B.
//   HAND    wait for an empty stage B, hand the job over (early ends too: they go to B's NEXT).
//   VLOAD   (B) the job's final probabilities from B's prob-buffer bank into the top-k engine,
//           8 a cycle; VRUN: top-k(n=m, k=v_topk) -> B's V list.
//   V pass  fetcher fed with key[vlist[i]] -> unpack -> stage (prob of the same position) ->
//           reconstruct -> pv_accum -> out, abs_sum.
//   ACC     token importance accumulate (key[pos], prob[pos]); head accumulate (head_id, abs_sum).
//   RESULT  res_valid until res_ready.
// AXI errors: a fetch ending with error != 0 aborts the job (AXI_SLVERR 7 / AXI_DECERR 8, zero
// outputs, no accumulation). The softmax is not modified: during a K pass the controller clears
// the unpacker and dot-product pipelines and feeds the softmax zero scores until it has its n
// scores, then drains (and discards) its probabilities, so it ends idle.
// The small lists (key list, V list, prob buffer) are read combinationally (distributed RAM);
// the K-code buffer (L_MAX/KL rows of KL x D*12 bits) has a synchronous read.
// Wide datapath (section 11.1): at QK_MULS > D the core moves KL = QK_MULS/D keys and
// VL = PV_MULS/D values a cycle: the key list is scanned KL entries a beat, the fetchers take
// KL indices a cycle and every channel's R beat (spatten_fetcher_wide), the unpackers give
// aligned beats of KL codes (key i in beat i/KL, lane i%KL; spatten_plane_unpack_wide), the
// dot product's beats are the softmax's beats, prob.V takes VL values with their probabilities,
// token accumulation takes KL entries a cycle. The lists (key list, V list, prob buffer) are
// read KL entries a cycle (position + lane).
// Parameters (docs/architecture.md section 1): the descriptor and result layouts (DESC_W, RES_W
// and every field offset below) derive from D, L_MAX, H_MAX and AW exactly like
// descriptor_fields() / result_fields() derive them from CoreParams; QK_MULS, PV_MULS,
// TOPK_CMPS, MAX_BURST and SM_LANES reach their blocks. Supported: AXI_DW = 4*D with D = 16, 32
// or 64 (a 4-bit token is one bus word, a dense 6-bit token 1.5: the fetcher's and unpacker's
// plane geometry; D <= 64 keeps a score within the softmax's 30 bits), L_MAX a power of two
// >= 64 (the readback window is 32 entries), H_MAX a power of two with 2*H_MAX <= L_MAX, AW
// 32..48, N_CH 1, 2, 4 or 8, QK_MULS a power of two up to 8*D (D/QK_MULS cycles per key below
// D), PV_MULS = D at QK_MULS <= D and PV_MULS = QK_MULS above (then SM_LANES = KL, TOPK_CMPS
// >= KL, MAX_BURST a power of two with MAX_BURST*AXI_DW/8 <= 4 KiB), TOPK_CMPS a power of two
// in 2..L_MAX/2, MAX_BURST 2..256, SM_LANES (softmax lanes) 1, 2, 4 or 8; DESC_W and RES_W
// must be left at their derived values. Anything else fails
// elaboration (an instance of a missing module: Verilog-2005 has no $error), never a core that
// misreads its descriptors.
module spatten_core #(
    parameter integer D         = 64,
    parameter integer L_MAX     = 1024,
    parameter integer H_MAX     = 32,
    parameter integer N_CH      = 1,
    parameter integer AXI_DW    = 256,
    parameter integer AW        = 32,
    parameter integer QK_MULS   = 64,
    parameter integer PV_MULS   = 64,
    parameter integer TOPK_CMPS = 16,
    parameter integer MAX_BURST = 16,
    parameter integer SM_LANES  = 8,
    // derived (section 2.1 / 2.3): 78 + 3 HB + 5 TB + 3 AW + 12 D and 365 + 2 TB + 16 D bits
    parameter integer DESC_W = 78 + 3 * ((H_MAX > 1) ? $clog2(H_MAX) : 1)
                               + 5 * $clog2(L_MAX + 1) + 3 * AW + 12 * D,
    parameter integer RES_W  = 365 + 2 * $clog2(L_MAX + 1) + 16 * D
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
    localparam integer LB  = $clog2(L_MAX);
    localparam integer TB  = $clog2(L_MAX + 1);
    localparam integer HB  = (H_MAX > 1) ? $clog2(H_MAX) : 1;
    localparam integer SW  = 24 + $clog2(D);           // Q.K score width (<= 30: D <= 64)
    localparam integer WSH = $clog2(AXI_DW / 8);       // log2(bytes per bus word)
    localparam [TB-1:0] T0 = {TB{1'b0}};
    localparam [TB-1:0] T1 = {{(TB-1){1'b0}}, 1'b1};
    localparam [HB:0]   H0 = {(HB+1){1'b0}};
    localparam integer  L_MAX_T = L_MAX;               // a sized copy for part-selects
    localparam [TB-1:0] N_MAX = L_MAX_T[TB-1:0];
    localparam integer  H_MAX_T = H_MAX;
    // softmax lanes: scores / probabilities per softmax beat
    localparam integer  SL  = SM_LANES;
    localparam integer  SLC = $clog2(SL + 1);
    localparam integer  SL_M1_I = SL - 1;
    localparam [SLC-1:0] SL_M1 = SL_M1_I[SLC-1:0];
    // value selection loads TK_LL probabilities per cycle into the top-k engine (section 11)
    localparam integer  TK_LL = (TOPK_CMPS < 8) ? TOPK_CMPS : 8;
    localparam integer  TKC = $clog2(TK_LL + 1);
    localparam [TKC-1:0] TK_LL_C = TK_LL[TKC-1:0];
    localparam [TB-1:0]  TK_LL_T = TK_LL[TB-1:0];
    localparam [HB:0]   H_MAX_H = H_MAX_T[HB:0];
    // keys per cycle through Q.K (KL), values per cycle through prob.V (VL), kept entries per
    // cycle from the prune state's scans and token accumulations (SCL): 1 at QK_MULS <= D (the
    // one-key datapath: spatten_fetcher + spatten_plane_unpack), else QK_MULS / D with the wide
    // datapath (spatten_fetcher_wide + spatten_plane_unpack_wide, section 11.1)
    localparam integer  KL  = (QK_MULS > D) ? QK_MULS / D : 1;
    localparam integer  VL  = PV_MULS / D;
    localparam integer  SCL = KL;
    localparam integer  KLC = $clog2(KL + 1);
    localparam integer  VLC = $clog2(VL + 1);
    localparam integer  SCC = $clog2(SCL + 1);
    localparam [TB-1:0] KL_T = KL[TB-1:0];
    localparam [TB-1:0] VL_T = VL[TB-1:0];
    localparam [TB-1:0] SCL_T = SCL[TB-1:0];
    localparam integer  KLB = (KL > 1) ? $clog2(KL) : 0;  // log2(keys per K-code buffer row)

    generate
        if (AXI_DW != 4 * D || !(D == 16 || D == 32 || D == 64) ||
            L_MAX < 64 || (L_MAX & (L_MAX - 1)) != 0 ||
            H_MAX < 2 || (H_MAX & (H_MAX - 1)) != 0 || 2 * H_MAX > L_MAX ||
            AW < 32 || AW > 48 ||
            !(N_CH == 1 || N_CH == 2 || N_CH == 4 || N_CH == 8) ||
            QK_MULS < 1 || QK_MULS > 8 * D || (QK_MULS & (QK_MULS - 1)) != 0 ||
            (KL == 1 && PV_MULS != D) ||
            (KL > 1 && (PV_MULS != QK_MULS || SM_LANES != KL || TOPK_CMPS < KL ||
                        (MAX_BURST & (MAX_BURST - 1)) != 0 || MAX_BURST * AXI_DW > 32768)) ||
            TOPK_CMPS < 2 || 2 * TOPK_CMPS > L_MAX || (TOPK_CMPS & (TOPK_CMPS - 1)) != 0 ||
            MAX_BURST < 2 || MAX_BURST > 256 ||
            !(SM_LANES == 1 || SM_LANES == 2 || SM_LANES == 4 || SM_LANES == 8) ||
            DESC_W != 78 + 3 * HB + 5 * TB + 3 * AW + 12 * D ||
            RES_W != 365 + 2 * TB + 16 * D) begin : unsupported
            spatten_core_unsupported_parameters see_docs_architecture_section_1 ();
        end
    endgenerate

    // ------------------------------------------------------------------ states
    // stage A (front): check .. value selection, then HAND (wait for an empty stage B)
    localparam [4:0] S_IDLE = 5'd0, S_CHECK = 5'd1, S_CLR = 5'd2, S_PR_SCAN = 5'd3,
                     S_PR_COLLECT = 5'd4, S_PR_BEGIN = 5'd5, S_PR_WIN = 5'd6,
                     S_HEADCHK = 5'd7, S_PASS_START = 5'd8, S_PASS = 5'd9,
                     S_VSEL = 5'd10, S_HAND = 5'd12,
                     S_DBG_SCAN = 5'd17, S_DBG_COL = 5'd18, S_DBG_OUT = 5'd19,
                     S_DBG_END = 5'd20;
    // stage B (back): V pass, accumulation, result
    localparam [3:0] B_IDLE = 4'd0, B_START = 4'd1, B_V = 4'd2, B_ACC_T = 4'd3,
                     B_ACC_H = 4'd4, B_NEXT = 4'd5, B_RESULT = 4'd6, B_VLOAD = 4'd7,
                     B_VRUN = 4'd8;

    reg [4:0] state;
    reg [DESC_W-1:0] desc;

    // descriptor fields (descriptor_fields(), LSB first): offsets derived from TB, HB, AW, D
    localparam integer O_HEAD  = 16;
    localparam integer O_NH    = O_HEAD + HB;
    localparam integer O_NT    = O_NH + HB + 1;
    localparam integer O_MSB   = O_NT + TB;
    localparam integer O_LSB   = O_MSB + 4;
    localparam integer O_VB    = O_LSB + 4;
    localparam integer O_MULT  = O_VB + 4;
    localparam integer O_SHIFT = O_MULT + 16;
    localparam integer O_THR   = O_SHIFT + 6;
    localparam integer O_VTOPK = O_THR + 16;
    localparam integer O_TKEEP = O_VTOPK + TB;
    localparam integer O_HKEEP = O_TKEEP + TB;
    localparam integer O_FLAGS = O_HKEEP + HB + 1;
    localparam integer O_KMSB  = O_FLAGS + 4;
    localparam integer O_KLSB  = O_KMSB + AW;
    localparam integer O_VBASE = O_KLSB + AW;
    localparam integer O_QUERY = O_VBASE + AW;
    localparam integer RS0     = O_QUERY + D * 12;     // per-step re-selection fields
    wire [15:0]     d_job_id    = desc[15:0];
    wire [HB-1:0]   d_head_id   = desc[O_HEAD +: HB];
    wire [HB:0]     d_n_heads   = desc[O_NH +: HB + 1];
    wire [TB-1:0]   d_n_tokens  = desc[O_NT +: TB];
    wire [3:0]      d_msb       = desc[O_MSB +: 4];
    wire [3:0]      d_lsb       = desc[O_LSB +: 4];
    wire [3:0]      d_vbits     = desc[O_VB +: 4];
    wire [15:0]     d_mult      = desc[O_MULT +: 16];
    wire [5:0]      d_shift     = desc[O_SHIFT +: 6];
    wire [15:0]     d_thresh    = desc[O_THR +: 16];
    wire [TB-1:0]   d_v_topk    = desc[O_VTOPK +: TB];
    wire [TB-1:0]   d_tok_keep  = desc[O_TKEEP +: TB];
    wire [HB:0]     d_head_keep = desc[O_HKEEP +: HB + 1];
    wire            d_clr_tok   = desc[O_FLAGS];
    wire            d_clr_head  = desc[O_FLAGS + 1];
    wire            d_acc_tok   = desc[O_FLAGS + 2];
    wire            d_acc_head  = desc[O_FLAGS + 3];
    wire [AW-1:0]   d_kmsb      = desc[O_KMSB +: AW];
    wire [AW-1:0]   d_klsb      = desc[O_KLSB +: AW];
    wire [AW-1:0]   d_vbase     = desc[O_VBASE +: AW];
    wire [D*12-1:0] d_query     = desc[O_QUERY +: D*12];
    wire            d_reselect  = desc[RS0];
    wire [4:0]      d_imp_shift = desc[RS0+1 +: 5];
    wire [TB-1:0]   d_prot_sink = desc[RS0+6 +: TB];
    wire [TB-1:0]   d_prot_rec  = desc[RS0+6+TB +: TB];

    // ------------------------------------------------------------------ validation
    function [1:0] stride_of;  // bus words per token (AXI_DW = 4 D: a 4-bit token is a word)
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
    // end of a plane: base + its bytes rounded up to bus words (a dense 6-bit plane is
    // ceil(1.5 n) words) must not pass 2^AW; EW bits hold it without overflow
    localparam integer EW = AW + TB + 3 + WSH;
    function addr_bad;
        input [AW-1:0] base;
        input [3:0]    w;
        input [TB-1:0] n;
        reg [EW-1:0] nn, words, endp;
        begin
            nn = {{(EW-TB){1'b0}}, n};
            if (w == 4'd6)
                words = ((nn * 3) + 1) >> 1;
            else
                words = nn * {{(EW-2){1'b0}}, stride_of(w)};
            endp = {{(EW-AW){1'b0}}, base} + (words << WSH);
            addr_bad = (base[WSH-1:0] != {WSH{1'b0}})
                       || (endp > {{(EW-AW-1){1'b0}}, 1'b1, {AW{1'b0}}});
        end
    endfunction

    reg [3:0] v_status;
    always @(*) begin
        if (d_n_heads == H0 || d_n_heads > H_MAX_H || {1'b0, d_head_id} >= d_n_heads)
            v_status = 4'd6;
        else if (d_n_tokens == T0)
            v_status = 4'd2;
        else if (d_n_tokens > N_MAX)
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
    // Stage A (front) works on the job in `desc`; its results so far are the a_* registers.
    // Stage B (back) holds the job handed over by A (b_*, r_*: what the result reports).
    reg [3:0]   a_status;
    reg         a_lsb_fetched, a_vsel, a_skip;
    reg [15:0]  a_max_msb, a_max;
    reg [TB-1:0]  a_m, a_nv;
    reg [23:0]  a_beats;
    reg [31:0]  a_cyc;
    reg [1:0]   pr_mode;       // 0 heads prune, 1 tokens prune, 2 key list
    reg [TB-1:0]  cnt;           // scan collect counter / list counters
    reg         lsb_pass;      // 0 K MSB pass, 1 K LSB pass
    reg         err_a;         // AXI error seen in the current K pass
    reg [TB-1:0]  fi;            // K feeder position
    reg [TB-1:0]  op;            // K output-side position
    reg         clr_pipe;      // clears the K unpacker and dot product
    reg         abank;         // list bank of the job in stage A
    reg         keys_done;     // the key list is complete (a_m valid)

    reg [3:0]   bstate;
    reg [15:0]  b_job_id;
    reg [HB-1:0] b_head_id;
    reg [3:0]   b_vbits;
    reg [AW-1:0] b_vbase;
    reg         b_acc_tok, b_acc_head, b_vsel, bbank;
    reg [3:0]   r_status;
    reg         r_lsb_fetched;
    reg [15:0]  r_max_msb, r_max;
    reg [TB-1:0]  r_m, r_nv;
    reg [23:0]  r_beats;
    reg [31:0]  r_cycles, b_cyc;
    reg [D*16-1:0] r_out;
    reg [21:0]  r_abs;
    reg         err_b;         // AXI error seen in the V pass
    reg [TB-1:0]  fi_b;          // V feeder position
    reg [TB-1:0]  op_b;          // V output-side / accumulate position
    reg         clr_pipe_b;    // clears the V unpacker and the prob.V accumulator

    // Lists, two banks (the job in A writes its bank while the job in B reads the other;
    // A takes the other bank at each handoff, and hands over only to an empty B).
    reg [LB-1:0] klist [0:2*L_MAX-1];
    reg [LB-1:0] vlist [0:2*L_MAX-1];
    reg [15:0]   pbuf  [0:2*L_MAX-1];
    reg [KL*D*12-1:0] kbuf [0:L_MAX/KL-1];   // stage A only (LSB pass), KL keys a row
    reg [KL*D*12-1:0] kbuf_q;

    // A job that changes the pruning state waits after CHECK until stage B is empty (section 11).
    wire d_changes = d_clr_tok || d_clr_head || d_reselect || (d_imp_shift != 5'd0)
                     || (d_head_keep != H0) || (d_tok_keep != T0);
    wire b_empty = (bstate == B_IDLE);
    wire handoff = (state == S_HAND) && b_empty;

    // ------------------------------------------------------------------ prune state
    // Status/debug outputs of the sub-blocks that the controller does not need (top-k thr/ties/
    // pass monitor, softmax statistics other than max_prob, busy flags, *_last flags) are left
    // unconnected in effect: waived for the instance wires declared from here to the pv section.
    /* verilator lint_off UNUSEDSIGNAL */
    wire        ps_op_ready, ps_scan_ready;
    wire        ps_scan_valid, ps_scan_last, ps_scan_done, ps_win_ready;
    wire [SCL*LB-1:0] ps_scan_idx;    // up to SCL kept entries per scan beat, lane 0 first
    wire [SCL*32-1:0] ps_scan_imp;
    wire [SCC-1:0] ps_scan_cnt;       // entries in the beat (1 in the readback's scan)
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
    reg  [TB-1:0] dbg_nq;
    wire ps_scan_heads = dbg_scan ? dbg_h : (pr_mode == 2'd0);
    wire ps_prune_heads = (pr_mode == 2'd0);
    wire [TB-1:0] ps_pr_n = (pr_mode == 2'd0) ? {{(TB-HB-1){1'b0}}, d_n_heads} : d_n_tokens;
    wire [TB-1:0] ps_n = dbg_scan ? dbg_nq : ps_pr_n;
    wire ps_prune_begin = (state == S_PR_BEGIN);
    wire [TB-1:0] keep_n = (pr_mode == 2'd0) ? {{(TB-HB-1){1'b0}}, d_head_keep} : d_tok_keep;

    // ------------------------------------------------------------------ top-k (stage A)
    wire        tk_busy, tk_out_valid, tk_out_last, tk_done;
    wire [LB-1:0] tk_out_index;
    wire [32:0] tk_thr;
    wire [LB:0] tk_ties, tk_passes, tk_pm, tk_pc;
    wire [31:0] tk_cycles;
    wire        tk_pv;
    reg         tk_start;
    reg [TB-1:0]  tk_n, tk_k;
    wire        sm_prob_valid;
    wire [SL*16-1:0] sm_prob_data;
    wire [LB-1:0] sm_prob_index;
    wire [SLC-1:0] sm_prob_count;
    // Loads: a prune's scan (stage A, one entry per cycle; only while stage B is empty, section
    // 11) or the value selection's probabilities (stage B_VLOAD: TK_LL per cycle from the prob
    // buffer of B's bank). The engine is never used by both stages at once.
    wire        tk_load_a = (state == S_PR_COLLECT) && (pr_mode != 2'd2);
    wire        tk_load_valid = tk_load_a ? ps_scan_valid : (bstate == B_VLOAD);
    wire [LB-1:0] tk_load_index = tk_load_a ? cnt[LB-1:0] : op_b[LB-1:0];
    wire [TB-1:0] vload_left = r_m - op_b;  // probabilities not yet loaded (B_VLOAD)
    wire [TKC-1:0] tk_scan_count;   // the scan beat's entries (TK_LL >= SCL)
    generate
        if (TKC > SCC) begin : g_tk_cnt_ext
            assign tk_scan_count = {{(TKC-SCC){1'b0}}, ps_scan_cnt};
        end else begin : g_tk_cnt
            assign tk_scan_count = ps_scan_cnt[TKC-1:0];
        end
    endgenerate
    wire [TKC-1:0] tk_load_count = tk_load_a ? tk_scan_count :
                                   (vload_left >= TK_LL_T) ? TK_LL_C : vload_left[TKC-1:0];
    wire [TK_LL*33-1:0] tk_load_value;
    genvar gt;
    generate
        for (gt = 0; gt < TK_LL; gt = gt + 1) begin : g_tk_lane
            localparam integer  GT_I = gt;
            localparam [LB-1:0] GT = GT_I[LB-1:0];
            wire [15:0] vprob = pbuf[{bbank, op_b[LB-1:0] + GT}];  // past r_m: ignored
            if (gt < SCL) begin : g_scan_lane
                // token prune: protected = t < protect_sink or t >= n_tokens - protect_recent
                // (section 7 step 6), ranked above every unprotected token through the value's
                // top bit
                wire [LB-1:0] sidx = ps_scan_idx[gt*LB +: LB];
                wire prot = (pr_mode == 2'd1) &&
                            (({1'b0, sidx} < d_prot_sink) ||
                             ({2'b0, sidx} + {1'b0, d_prot_rec} >= {1'b0, d_n_tokens}));
                assign tk_load_value[gt*33 +: 33] = tk_load_a ? {prot, ps_scan_imp[gt*32 +: 32]}
                                                             : {17'd0, vprob};
            end else begin : g_lanes
                assign tk_load_value[gt*33 +: 33] = {17'd0, vprob};
            end
        end
    endgenerate
    wire        tk_out_ready = (state == S_PR_WIN) ? ps_win_ready : (bstate == B_VRUN);

    spatten_topk #(.L_MAX(L_MAX), .VALUE_BITS(33), .TOPK_CMPS(TOPK_CMPS),
                   .LOAD_LANES(TK_LL)) u_topk (
        .clk(clk), .rst_n(rst_n),
        .load_valid(tk_load_valid), .load_index(tk_load_index), .load_value(tk_load_value),
        .load_count(tk_load_count),
        .start(tk_start), .n(tk_n), .k(tk_k), .busy(tk_busy),
        .out_valid(tk_out_valid), .out_ready(tk_out_ready), .out_index(tk_out_index),
        .out_last(tk_out_last), .done(tk_done), .thr(tk_thr), .ties(tk_ties),
        .passes(tk_passes), .cycles(tk_cycles), .pass_valid(tk_pv), .pass_m(tk_pm),
        .pass_cycles(tk_pc)
    );

    wire ps_win_valid = (state == S_PR_WIN) && tk_out_valid;
    wire [LB-1:0] ps_win_idx = klist[{abank, tk_out_index}];
    // accumulation belongs to stage B (the job in B, its bank)
    wire ps_tacc_valid = (bstate == B_ACC_T) && b_acc_tok;
    wire ps_hacc_valid = (bstate == B_ACC_H) && b_acc_head;
    // token accumulation: up to SCL entries (positions op_b ..) per cycle
    wire [TB-1:0]  tacc_left = r_m - op_b;
    wire [TB-1:0]  tacc_n = (tacc_left >= SCL_T) ? SCL_T : tacc_left;
    wire [SCC-1:0] ps_tacc_cnt = tacc_n[SCC-1:0];
    wire [SCL*LB-1:0] ps_tacc_idx;
    wire [SCL*16-1:0] ps_tacc_prob;
    genvar ga;
    generate
        for (ga = 0; ga < SCL; ga = ga + 1) begin : g_tacc_lane
            localparam integer  GA_I = ga;
            localparam [LB-1:0] GA = GA_I[LB-1:0];
            assign ps_tacc_idx[ga*LB +: LB] = klist[{bbank, op_b[LB-1:0] + GA}];
            assign ps_tacc_prob[ga*16 +: 16] = pbuf[{bbank, op_b[LB-1:0] + GA}];
        end
    endgenerate

    spatten_prune_state #(.L_MAX(L_MAX), .H_MAX(H_MAX), .LANES(SCL)) u_prune (
        .clk(clk), .rst_n(rst_n),
        .op_ready(ps_op_ready), .clear_tokens(ps_clear_t), .clear_heads(ps_clear_h),
        .reselect(ps_reselect), .reselect_n(d_n_tokens), .rescale(ps_rescale),
        .rescale_shift(d_imp_shift),
        .scan_start(ps_scan_start), .scan_heads(ps_scan_heads), .scan_all(dbg_scan),
        .scan_n(ps_n), .scan_wide(!dbg_scan),
        .scan_idx_only(!dbg_scan && pr_mode == 2'd2),  // the key list needs indices only
        .prune_begin(ps_prune_begin), .prune_heads(ps_prune_heads),
        .prune_n(ps_pr_n),
        .tacc_valid(ps_tacc_valid), .tacc_ready(ps_tacc_ready),
        .tacc_count(ps_tacc_cnt), .tacc_idx(ps_tacc_idx), .tacc_prob(ps_tacc_prob),
        .hacc_valid(ps_hacc_valid), .hacc_ready(ps_hacc_ready), .hacc_idx(b_head_id),
        .hacc_val(r_abs),
        .scan_valid(ps_scan_valid), .scan_ready(ps_scan_ready), .scan_idx(ps_scan_idx),
        .scan_imp(ps_scan_imp), .scan_count_beat(ps_scan_cnt),
        .scan_last(ps_scan_last), .scan_done(ps_scan_done),
        .scan_count(ps_scan_count),
        .win_valid(ps_win_valid), .win_ready(ps_win_ready), .win_idx(ps_win_idx),
        .win_last(tk_out_last), .prune_end(1'b0),
        .rd_head_id(d_head_id), .rd_head_kept(ps_head_kept), .rd_head_imp(ps_head_imp),
        .rd_token_idx(ps_scan_idx[LB-1:0]), .rd_token_kept(ps_tok_kept),
        .head_kept_map(ps_head_map)
    );

    // ------------------------------------------------------------------ fetchers + arbiter
    // Two fetchers share the N_CH read channels: the V fetcher (stage B, the older job) has
    // priority per channel over the K fetcher (stage A); spatten_axi_read_arbiter routes each
    // channel's R bursts back to the fetcher that issued them (AR order per channel).
    wire [N_CH-1:0]      k_arvalid, k_arready, k_rvalid, k_rready, k_rlast;
    wire [N_CH*AW-1:0]   k_araddr;
    wire [N_CH*8-1:0]    k_arlen;
    wire [N_CH*3-1:0]    k_arsize;
    wire [N_CH*2-1:0]    k_arburst, k_rresp;
    wire [N_CH*AXI_DW-1:0] k_rdata;
    wire [N_CH-1:0]      v_arvalid, v_arready, v_rvalid, v_rready, v_rlast;
    wire [N_CH*AW-1:0]   v_araddr;
    wire [N_CH*8-1:0]    v_arlen;
    wire [N_CH*3-1:0]    v_arsize;
    wire [N_CH*2-1:0]    v_arburst, v_rresp;
    wire [N_CH*AXI_DW-1:0] v_rdata;

    spatten_axi_read_arbiter #(.AW(AW), .DW(AXI_DW), .N_CH(N_CH), .MAX_OUTSTANDING(16)) u_arb (
        .clk(clk), .rst_n(rst_n),
        .s0_arvalid(v_arvalid), .s0_arready(v_arready), .s0_araddr(v_araddr),
        .s0_arlen(v_arlen), .s0_arsize(v_arsize), .s0_arburst(v_arburst),
        .s0_rvalid(v_rvalid), .s0_rready(v_rready), .s0_rdata(v_rdata), .s0_rresp(v_rresp),
        .s0_rlast(v_rlast),
        .s1_arvalid(k_arvalid), .s1_arready(k_arready), .s1_araddr(k_araddr),
        .s1_arlen(k_arlen), .s1_arsize(k_arsize), .s1_arburst(k_arburst),
        .s1_rvalid(k_rvalid), .s1_rready(k_rready), .s1_rdata(k_rdata), .s1_rresp(k_rresp),
        .s1_rlast(k_rlast),
        .m_axi_arvalid(m_axi_arvalid), .m_axi_arready(m_axi_arready),
        .m_axi_araddr(m_axi_araddr), .m_axi_arlen(m_axi_arlen), .m_axi_arsize(m_axi_arsize),
        .m_axi_arburst(m_axi_arburst), .m_axi_rvalid(m_axi_rvalid),
        .m_axi_rready(m_axi_rready), .m_axi_rdata(m_axi_rdata), .m_axi_rresp(m_axi_rresp),
        .m_axi_rlast(m_axi_rlast)
    );

    // K fetcher (stage A): MSB or LSB plane of the keys in the key list
    wire [3:0] k_width = lsb_pass ? d_lsb : d_msb;
    reg         fk_start;
    reg [AW-1:0] fk_base;
    reg [1:0]   fk_stride;
    wire        fk_busy, fk_done;
    wire [1:0]  fk_error;
    wire [23:0] fk_beats;
    // The K MSB fetch starts with the key list's first entry and follows its scan: up to KL
    // entries from position fi are offered; before the scan has ended an entry is offered only
    // once the next one exists, so idx_last is always known.
    wire        key_collect = (state == S_PR_COLLECT) && (pr_mode == 2'd2);
    wire        in_kpass = (state == S_PASS) || key_collect;
    wire [TB-1:0] fk_avail = keys_done ? (a_m - fi) : ((cnt > fi + T1) ? (cnt - fi - T1) : T0);
    wire [TB-1:0] fk_n = (fk_avail >= KL_T) ? KL_T : fk_avail;
    wire        fk_idx_valid = in_kpass && (fk_avail != T0);
    wire        fk_idx_ready;
    wire        fk_idx_last = keys_done && (fi + fk_n == a_m);
    wire [KL*LB-1:0] fk_idx_tokens;
    wire        fk_beat_valid;              // R data waiting at the K fetcher's output
    wire        fk_dense_w6 = (k_width == 4'd6);  // latched by the fetcher at fk_start

    // V fetcher (stage B): V plane of the selected values of the job in B (positions fi_b ..,
    // through the V list when the job selects values)
    reg         fv_start;
    wire        fv_busy, fv_done;
    wire [1:0]  fv_error;
    wire [23:0] fv_beats;
    wire [TB-1:0] fv_avail = r_nv - fi_b;
    wire [TB-1:0] fv_n = (fv_avail >= VL_T) ? VL_T : fv_avail;
    wire        fv_idx_valid = (bstate == B_V) && (fi_b < r_nv);
    wire        fv_idx_ready;
    wire        fv_idx_last = (fi_b + fv_n == r_nv);
    wire [VL*LB-1:0] fv_idx_tokens;
    wire        fv_beat_valid;
    genvar gk;
    generate
        for (gk = 0; gk < KL; gk = gk + 1) begin : g_k_idx
            localparam integer  GK_I = gk;
            localparam [LB-1:0] GK = GK_I[LB-1:0];
            assign fk_idx_tokens[gk*LB +: LB] = klist[{abank, fi[LB-1:0] + GK}];
        end
        for (gk = 0; gk < VL; gk = gk + 1) begin : g_v_idx
            localparam integer  GV_I = gk;
            localparam [LB-1:0] GV = GV_I[LB-1:0];
            wire [LB-1:0] vp = fi_b[LB-1:0] + GV;
            wire [LB-1:0] pos = b_vsel ? vlist[{bbank, vp}] : vp;
            assign fv_idx_tokens[gk*LB +: LB] = klist[{bbank, pos}];
        end
    endgenerate

    // K and V planes -> code vectors: u_* (K, up to KL keys a beat) and uv_* (V, up to VL
    // values a beat). The wide unpacker's beats are aligned (key i of the pass in beat i/KL,
    // lane i%KL; only the pass's last beat is partial), which the K-code buffer rows and the
    // softmax beats rely on.
    wire       u_out_valid, u_out_ready;
    wire [KLC-1:0] u_count;
    wire [KL*D*12-1:0] u_codes;
    wire       uv_out_valid, uv_out_ready;
    wire [VLC-1:0] uv_count;
    wire [VL*D*12-1:0] uv_codes;
    wire       u_out_last_unused, uv_out_last_unused;
    generate
        if (KL == 1) begin : g_k_narrow
            wire              kb_valid, kb_ready;
            wire [AXI_DW-1:0] kb_data;
            wire [1:0]        kb_phase;
            spatten_fetcher #(.AW(AW), .DW(AXI_DW), .N_CH(N_CH), .MAX_BURST(MAX_BURST),
                              .MAX_OUTSTANDING(8), .TOK_BITS(LB)) u_fetch_k (
                .clk(clk), .rst_n(rst_n), .start(fk_start), .base(fk_base),
                .stride_beats(fk_stride), .dense_w6(fk_dense_w6),
                .busy(fk_busy), .done(fk_done), .error(fk_error), .beats(fk_beats),
                .idx_valid(fk_idx_valid), .idx_ready(fk_idx_ready),
                .idx_token(fk_idx_tokens), .idx_last(fk_idx_last),
                .m_axi_arvalid(k_arvalid), .m_axi_arready(k_arready),
                .m_axi_araddr(k_araddr), .m_axi_arlen(k_arlen), .m_axi_arsize(k_arsize),
                .m_axi_arburst(k_arburst), .m_axi_rvalid(k_rvalid),
                .m_axi_rready(k_rready), .m_axi_rdata(k_rdata), .m_axi_rresp(k_rresp),
                .m_axi_rlast(k_rlast),
                .beat_valid(kb_valid), .beat_ready(kb_ready), .beat_data(kb_data),
                .beat_phase(kb_phase)
            );
            spatten_plane_unpack #(.D(D), .AXI_DW(AXI_DW)) u_unpack (
                .clk(clk), .rst_n(rst_n), .clear(clr_pipe), .cfg_width(k_width),
                .cfg_signed(!lsb_pass), .in_valid(kb_valid), .in_ready(kb_ready),
                .in_data(kb_data), .in_last(1'b0), .in_phase(kb_phase),
                .out_valid(u_out_valid), .out_ready(u_out_ready), .out_codes(u_codes),
                .out_last(u_out_last_unused)
            );
            assign fk_beat_valid = kb_valid;
            assign u_count = 1'b1;
        end else begin : g_k_wide
            wire              kb_valid, kb_ready;
            wire [KLC-1:0]    kb_count;
            wire [KL*AXI_DW-1:0] kb_data;
            wire [KL*2-1:0]   kb_phase;
            spatten_fetcher_wide #(.AW(AW), .DW(AXI_DW), .N_CH(N_CH), .MAX_BURST(MAX_BURST),
                                   .MAX_OUTSTANDING(8 * N_CH), .TOK_BITS(LB),
                                   .IDX_LANES(KL), .OUT_BEATS(KL)) u_fetch_k (
                .clk(clk), .rst_n(rst_n), .start(fk_start), .base(fk_base),
                .stride_beats(fk_stride), .dense_w6(fk_dense_w6),
                .busy(fk_busy), .done(fk_done), .error(fk_error), .beats(fk_beats),
                .idx_valid(fk_idx_valid), .idx_ready(fk_idx_ready),
                .idx_count(fk_n[KLC-1:0]), .idx_tokens(fk_idx_tokens), .idx_last(fk_idx_last),
                .m_axi_arvalid(k_arvalid), .m_axi_arready(k_arready),
                .m_axi_araddr(k_araddr), .m_axi_arlen(k_arlen), .m_axi_arsize(k_arsize),
                .m_axi_arburst(k_arburst), .m_axi_rvalid(k_rvalid),
                .m_axi_rready(k_rready), .m_axi_rdata(k_rdata), .m_axi_rresp(k_rresp),
                .m_axi_rlast(k_rlast),
                .beat_valid(kb_valid), .beat_ready(kb_ready), .beat_count(kb_count),
                .beat_data(kb_data), .beat_phase(kb_phase)
            );
            // the pass's key count is known once the key list is complete (before its last
            // key is fetched)
            spatten_plane_unpack_wide #(.D(D), .AXI_DW(AXI_DW), .IN_BEATS(KL), .KPC(KL),
                                        .TB(TB)) u_unpack (
                .clk(clk), .rst_n(rst_n), .clear(clr_pipe), .cfg_width(k_width),
                .cfg_signed(!lsb_pass), .cfg_total(keys_done ? a_m : N_MAX),
                .in_valid(kb_valid), .in_ready(kb_ready), .in_count(kb_count),
                .in_data(kb_data), .in_phase(kb_phase),
                .out_valid(u_out_valid), .out_ready(u_out_ready), .out_count(u_count),
                .out_codes(u_codes), .out_last(u_out_last_unused)
            );
            assign fk_beat_valid = kb_valid;
        end
        if (VL == 1) begin : g_v_narrow
            wire              vb_valid, vb_ready;
            wire [AXI_DW-1:0] vb_data;
            wire [1:0]        vb_phase;
            spatten_fetcher #(.AW(AW), .DW(AXI_DW), .N_CH(N_CH), .MAX_BURST(MAX_BURST),
                              .MAX_OUTSTANDING(8), .TOK_BITS(LB)) u_fetch_v (
                .clk(clk), .rst_n(rst_n), .start(fv_start), .base(b_vbase),
                .stride_beats(stride_of(b_vbits)), .dense_w6(b_vbits == 4'd6),
                .busy(fv_busy), .done(fv_done), .error(fv_error), .beats(fv_beats),
                .idx_valid(fv_idx_valid), .idx_ready(fv_idx_ready),
                .idx_token(fv_idx_tokens), .idx_last(fv_idx_last),
                .m_axi_arvalid(v_arvalid), .m_axi_arready(v_arready),
                .m_axi_araddr(v_araddr), .m_axi_arlen(v_arlen), .m_axi_arsize(v_arsize),
                .m_axi_arburst(v_arburst), .m_axi_rvalid(v_rvalid),
                .m_axi_rready(v_rready), .m_axi_rdata(v_rdata), .m_axi_rresp(v_rresp),
                .m_axi_rlast(v_rlast),
                .beat_valid(vb_valid), .beat_ready(vb_ready), .beat_data(vb_data),
                .beat_phase(vb_phase)
            );
            spatten_plane_unpack #(.D(D), .AXI_DW(AXI_DW)) u_unpack_v (
                .clk(clk), .rst_n(rst_n), .clear(clr_pipe_b), .cfg_width(b_vbits),
                .cfg_signed(1'b1), .in_valid(vb_valid), .in_ready(vb_ready),
                .in_data(vb_data), .in_last(1'b0), .in_phase(vb_phase),
                .out_valid(uv_out_valid), .out_ready(uv_out_ready), .out_codes(uv_codes),
                .out_last(uv_out_last_unused)
            );
            assign fv_beat_valid = vb_valid;
            assign uv_count = 1'b1;
        end else begin : g_v_wide
            wire              vb_valid, vb_ready;
            wire [VLC-1:0]    vb_count;
            wire [VL*AXI_DW-1:0] vb_data;
            wire [VL*2-1:0]   vb_phase;
            spatten_fetcher_wide #(.AW(AW), .DW(AXI_DW), .N_CH(N_CH), .MAX_BURST(MAX_BURST),
                                   .MAX_OUTSTANDING(8 * N_CH), .TOK_BITS(LB),
                                   .IDX_LANES(VL), .OUT_BEATS(VL)) u_fetch_v (
                .clk(clk), .rst_n(rst_n), .start(fv_start), .base(b_vbase),
                .stride_beats(stride_of(b_vbits)), .dense_w6(b_vbits == 4'd6),
                .busy(fv_busy), .done(fv_done), .error(fv_error), .beats(fv_beats),
                .idx_valid(fv_idx_valid), .idx_ready(fv_idx_ready),
                .idx_count(fv_n[VLC-1:0]), .idx_tokens(fv_idx_tokens), .idx_last(fv_idx_last),
                .m_axi_arvalid(v_arvalid), .m_axi_arready(v_arready),
                .m_axi_araddr(v_araddr), .m_axi_arlen(v_arlen), .m_axi_arsize(v_arsize),
                .m_axi_arburst(v_arburst), .m_axi_rvalid(v_rvalid),
                .m_axi_rready(v_rready), .m_axi_rdata(v_rdata), .m_axi_rresp(v_rresp),
                .m_axi_rlast(v_rlast),
                .beat_valid(vb_valid), .beat_ready(vb_ready), .beat_count(vb_count),
                .beat_data(vb_data), .beat_phase(vb_phase)
            );
            spatten_plane_unpack_wide #(.D(D), .AXI_DW(AXI_DW), .IN_BEATS(VL), .KPC(VL),
                                        .TB(TB)) u_unpack_v (
                .clk(clk), .rst_n(rst_n), .clear(clr_pipe_b), .cfg_width(b_vbits),
                .cfg_signed(1'b1), .cfg_total(r_nv),
                .in_valid(vb_valid), .in_ready(vb_ready), .in_count(vb_count),
                .in_data(vb_data), .in_phase(vb_phase),
                .out_valid(uv_out_valid), .out_ready(uv_out_ready), .out_count(uv_count),
                .out_codes(uv_codes), .out_last(uv_out_last_unused)
            );
            assign fv_beat_valid = vb_valid;
        end
    endgenerate

    // ------------------------------------------------------------------ K stage
    reg        s_valid;
    reg [KL*D*12-1:0] s_codes;
    reg [KLC-1:0] s_count;
    reg [TB-1:0] s_pos;
    wire       dp_in_ready;
    assign     u_out_ready = (!s_valid || dp_in_ready) && !err_a;
    wire       cap = u_out_valid && u_out_ready;
    // K-code buffer: rows of KL keys (aligned beats: position op is a row's first key)
    wire [LB-KLB-1:0] k_row = op[LB-1:KLB];
    always @(posedge clk) begin
        if (cap && !lsb_pass) kbuf[k_row] <= u_codes;
        if (cap) kbuf_q <= kbuf[k_row];
    end

    wire [KL*D*12-1:0] rc_x;
    genvar gr;
    generate
        for (gr = 0; gr < KL; gr = gr + 1) begin : g_rc
            spatten_reconstruct #(.D(D)) u_rc (
                .msb_bits(d_msb),
                .lsb_bits(lsb_pass ? d_lsb : 4'd0),
                .msb_codes(lsb_pass ? kbuf_q[gr*D*12 +: D*12] : s_codes[gr*D*12 +: D*12]),
                .lsb_codes(s_codes[gr*D*12 +: D*12]),
                .x_eff(rc_x[gr*D*12 +: D*12])
            );
        end
    endgenerate

    // ------------------------------------------------------------------ dot + softmax
    wire dp_out_valid, dp_out_last;
    wire signed [KL*SW-1:0] dp_score;
    wire sm_score_ready, sm_busy, sm_done, sm_prob_last, sm_stats_valid;
    wire [15:0] sm_max_prob;
    wire [LB-1:0] sm_max_index;
    wire [25:0] sm_exp_sum, sm_recip;
    reg  sm_start;
    reg  sm_n_update;  // the key count is known: the MSB pass's softmax was started before
    wire [TB-1:0] sm_n = keys_done ? a_m : N_MAX;
    wire dp_in_valid = s_valid && !err_a;

    wire dp_out_ready;
    wire [KLC-1:0] dp_out_count_unused;  // beats are aligned: the softmax counts to its n
    spatten_dot_product #(.D(D), .QK_MULS(QK_MULS)) u_dot (
        .clk(clk), .rst_n(rst_n), .clear(clr_pipe), .query(d_query),
        .in_valid(dp_in_valid), .in_ready(dp_in_ready), .in_k(rc_x), .in_count(s_count),
        .in_last(s_pos + {{(TB-KLC){1'b0}}, s_count} == a_m), .out_valid(dp_out_valid),
        .out_ready(dp_out_ready), .out_score(dp_score), .out_count(dp_out_count_unused),
        .out_last(dp_out_last)
    );

    // Scores into the softmax (scores sign-extended to its 30 bits). At KL = 1: one a cycle at
    // SM_LANES = 1; at SM_LANES > 1 a gearbox packs SM_LANES consecutive scores into a beat
    // (the job's last score ends a partial beat, whose other lanes the softmax ignores). At
    // KL = SM_LANES > 1 the dot product's aligned beats are the softmax's beats. After an AXI
    // error the softmax is fed zero beats until it has its n scores (see the header), so it
    // ends idle.
    wire            sm_score_valid;
    wire [SL*30-1:0] sm_score_beat;
    wire [KL*30-1:0] sm_scores;
    genvar gs;
    generate
        for (gs = 0; gs < KL; gs = gs + 1) begin : g_score_ext
            if (SW < 30) begin : g_ext
                assign sm_scores[gs*30 +: 30] = {{(30-SW){dp_score[gs*SW+SW-1]}},
                                                 dp_score[gs*SW +: SW]};
            end else begin : g_same
                assign sm_scores[gs*30 +: 30] = dp_score[gs*SW +: SW];
            end
        end
        if (KL > 1 || SL == 1) begin : g_sm_direct
            assign dp_out_ready = sm_score_ready && !err_a;
            assign sm_score_valid = err_a ? 1'b1 : dp_out_valid;
            assign sm_score_beat = err_a ? {SL*30{1'b0}} : sm_scores;
        end else begin : g_sm_gearbox
            reg [SL*30-1:0] gb_data;
            reg [SLC-1:0]   gb_n;       // scores collected in the beat
            reg             gb_done;    // the beat is complete (SM_LANES scores, or the last)
            wire            gb_take = gb_done && sm_score_ready && !err_a;
            wire [SLC-1:0]  gb_pos = gb_take ? {SLC{1'b0}} : gb_n;
            wire            gb_fire = dp_out_valid && dp_out_ready;
            assign dp_out_ready = (!gb_done || sm_score_ready) && !err_a;
            assign sm_score_valid = err_a ? 1'b1 : gb_done;
            assign sm_score_beat = err_a ? {SL*30{1'b0}} : gb_data;
            always @(posedge clk) begin
                if (!rst_n || clr_pipe) begin
                    gb_n <= {SLC{1'b0}};
                    gb_done <= 1'b0;
                end else if (gb_fire) begin
                    gb_data[gb_pos[SLC-2:0]*30 +: 30] <= sm_scores;
                    gb_n <= gb_pos + {{(SLC-1){1'b0}}, 1'b1};
                    gb_done <= (gb_pos == SL_M1) || dp_out_last;
                end else if (gb_take) begin
                    gb_n <= {SLC{1'b0}};
                    gb_done <= 1'b0;
                end
            end
        end
    endgenerate

    spatten_softmax #(.L_MAX(L_MAX), .LANES(SL)) u_sm (
        .clk(clk), .rst_n(rst_n), .start(sm_start), .n_tokens(sm_n), .n_update(sm_n_update),
        .score_mult(d_mult),
        .score_shift(d_shift), .busy(sm_busy), .done(sm_done),
        .score_valid(sm_score_valid), .score_ready(sm_score_ready),
        .score_data(sm_score_beat),
        .prob_valid(sm_prob_valid), .prob_ready(1'b1), .prob_data(sm_prob_data),
        .prob_index(sm_prob_index), .prob_count(sm_prob_count), .prob_last(sm_prob_last),
        .stats_valid(sm_stats_valid), .max_prob(sm_max_prob), .max_index(sm_max_index),
        .exp_sum(sm_exp_sum), .recip(sm_recip)
    );

    // ------------------------------------------------------------------ V stage (B)
    reg        vs_valid;
    reg [VL*D*12-1:0] vs_codes;
    reg [VL*16-1:0] vs_prob;
    reg [VLC-1:0] vs_count;
    reg [TB-1:0] vs_pos;
    wire       pv_in_ready;
    assign     uv_out_ready = (!vs_valid || pv_in_ready) && !err_b;
    wire       cap_v = uv_out_valid && uv_out_ready;
    // the probabilities of the values in the beat (positions op_b .., through the V list)
    wire [VL*16-1:0] v_probs;
    wire [VL*D*12-1:0] rcv_x;
    genvar gv;
    generate
        for (gv = 0; gv < VL; gv = gv + 1) begin : g_v_lane
            localparam integer  GW_I = gv;
            localparam [LB-1:0] GW = GW_I[LB-1:0];
            wire [LB-1:0] vp = op_b[LB-1:0] + GW;
            wire [LB-1:0] pos = b_vsel ? vlist[{bbank, vp}] : vp;
            assign v_probs[gv*16 +: 16] = pbuf[{bbank, pos}];
            spatten_reconstruct #(.D(D)) u_rc_v (
                .msb_bits(b_vbits), .lsb_bits(4'd0), .msb_codes(vs_codes[gv*D*12 +: D*12]),
                .lsb_codes(vs_codes[gv*D*12 +: D*12]), .x_eff(rcv_x[gv*D*12 +: D*12])
            );
        end
    endgenerate

    /* verilator lint_on UNUSEDSIGNAL */
    // ------------------------------------------------------------------ pv accumulate (B)
    wire pv_out_valid;
    wire [D*16-1:0] pv_out;
    wire [21:0] pv_abs;
    spatten_pv_accum #(.D(D), .ACC_BITS(32), .PV_MULS(PV_MULS)) u_pv (
        .clk(clk), .rst_n(rst_n), .clear(clr_pipe_b),
        .in_valid(vs_valid && !err_b), .in_ready(pv_in_ready),
        .in_prob(vs_prob), .in_value(rcv_x), .in_count(vs_count),
        .in_last(vs_pos + {{(TB-VLC){1'b0}}, vs_count} == r_nv),
        .out_valid(pv_out_valid), .out_ready(1'b1), .out_data(pv_out), .out_abs_sum(pv_abs)
    );
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
                    dbg_win_imp[gw*32 +: 32] <= ps_scan_imp[31:0];
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
    assign res_valid = (bstate == B_RESULT);
    assign res_data = {cb_fetch_stall, cb_fetch_busy, cb_ctrl, cb_v, cb_topk, cb_softmax, cb_qk,
                       cb_fetch_wait, r_out, r_cycles, r_beats, r_nv, r_m, r_max, r_max_msb,
                       r_lsb_fetched, r_status, b_job_id};

    // ------------------------------------------------------------------ stage counters
    // docs/architecture.md section 9. Every cycle counted by a job's `cycles` (CHECK .. HAND in
    // stage A, then B_START .. B_NEXT in stage B) goes to exactly one of the six exclusive
    // counters, in this priority:
    //   qk          the dot product takes a key (one per key and K pass at QK_MULS = D)
    //   v           the prob.V accumulator takes a value, or the V pass drains after its fetch
    //   fetch_wait  the job's K/V fetch is in progress and its datapath took nothing this cycle
    //   softmax     K pass after its fetch ended: last scores, normalisation, probabilities
    //   topk        head/token prune passes (their state scans included) and value selection
    //   ctrl        the rest: check (and its hazard wait), clear, head check, key list, pass
    //               start, handoff (and its wait for stage B), accumulate, end
    // fetch_busy (in-pass cycles with the job's fetcher running) and fetch_stall (fetch_wait
    // cycles with no R beat at that fetcher's output: waiting on DRAM) overlap the six.
    // Each stage counts for the job it holds: A's set is handed to B with the job (the handoff
    // cycle included), B's set is the result's.
    // 32 bits like `cycles`: the six sum to it, so none can wrap before it does.
    wire        a_job_cyc = (state >= S_CHECK) && (state <= S_HAND);
    wire        qk_take   = dp_in_valid && dp_in_ready;
    wire        fk_on     = in_kpass && fk_busy;
    wire        a_qk      = qk_take;
    wire        a_fwait   = !qk_take && fk_on;
    wire        a_sm      = !qk_take && (state == S_PASS) && !fk_busy;
    wire        a_topk    = ((state >= S_PR_SCAN && state <= S_PR_WIN) && pr_mode != 2'd2)
                            || state == S_VSEL;
    wire        a_ctrl    = !(a_qk || a_fwait || a_sm || a_topk);
    wire        a_stall   = a_fwait && !fk_beat_valid;
    wire        b_job_cyc = (bstate != B_IDLE) && (bstate != B_RESULT);
    wire        v_take    = vs_valid && !err_b && pv_in_ready;
    wire        fv_on     = (bstate == B_V) && fv_busy;
    wire        b_v       = v_take || (bstate == B_V && !fv_busy);
    wire        b_fwait   = !v_take && fv_on;
    wire        b_topk    = (bstate == B_VLOAD) || (bstate == B_VRUN);
    wire        b_ctrl    = !(b_v || b_fwait || b_topk);
    wire        b_stall   = b_fwait && !fv_beat_valid;
    reg  [31:0] ca_fetch_wait, ca_qk, ca_softmax, ca_topk, ca_ctrl, ca_fetch_busy,
                ca_fetch_stall;
    reg  [31:0] cb_fetch_wait, cb_qk, cb_softmax, cb_topk, cb_v, cb_ctrl, cb_fetch_busy,
                cb_fetch_stall;
    wire [31:0] na_fetch_wait  = ca_fetch_wait + {31'd0, a_fwait};
    wire [31:0] na_qk          = ca_qk + {31'd0, a_qk};
    wire [31:0] na_softmax     = ca_softmax + {31'd0, a_sm};
    wire [31:0] na_topk        = ca_topk + {31'd0, a_topk};
    wire [31:0] na_ctrl        = ca_ctrl + {31'd0, a_ctrl};
    wire [31:0] na_fetch_busy  = ca_fetch_busy + {31'd0, fk_on};
    wire [31:0] na_fetch_stall = ca_fetch_stall + {31'd0, a_stall};
    wire        job_accept = (state == S_IDLE) && !dbg_req && desc_valid;
    always @(posedge clk) begin
        if (!rst_n || job_accept) begin
            ca_fetch_wait <= 32'd0; ca_qk <= 32'd0; ca_softmax <= 32'd0; ca_topk <= 32'd0;
            ca_ctrl <= 32'd0; ca_fetch_busy <= 32'd0; ca_fetch_stall <= 32'd0;
        end else if (a_job_cyc) begin
            ca_fetch_wait <= na_fetch_wait; ca_qk <= na_qk; ca_softmax <= na_softmax;
            ca_topk <= na_topk; ca_ctrl <= na_ctrl; ca_fetch_busy <= na_fetch_busy;
            ca_fetch_stall <= na_fetch_stall;
        end
        if (!rst_n) begin
            cb_fetch_wait <= 32'd0; cb_qk <= 32'd0; cb_softmax <= 32'd0; cb_topk <= 32'd0;
            cb_v <= 32'd0; cb_ctrl <= 32'd0; cb_fetch_busy <= 32'd0; cb_fetch_stall <= 32'd0;
        end else if (handoff) begin
            cb_fetch_wait <= na_fetch_wait; cb_qk <= na_qk; cb_softmax <= na_softmax;
            cb_topk <= na_topk; cb_v <= 32'd0; cb_ctrl <= na_ctrl;
            cb_fetch_busy <= na_fetch_busy; cb_fetch_stall <= na_fetch_stall;
        end else if (b_job_cyc) begin
            cb_v <= cb_v + {31'd0, b_v};
            cb_fetch_wait <= cb_fetch_wait + {31'd0, b_fwait};
            cb_ctrl <= cb_ctrl + {31'd0, b_ctrl};
            cb_topk <= cb_topk + {31'd0, b_topk};
            cb_fetch_busy <= cb_fetch_busy + {31'd0, fv_on};
            cb_fetch_stall <= cb_fetch_stall + {31'd0, b_stall};
        end
    end

    // ------------------------------------------------------------------ list writes
    integer pj;  // lane of a softmax output beat
    always @(posedge clk) begin
        if (sm_prob_valid && !err_a && state == S_PASS)
            for (pj = 0; pj < SL; pj = pj + 1)
                if (pj < {{(32-SLC){1'b0}}, sm_prob_count})
                    pbuf[{abank, sm_prob_index + pj[LB-1:0]}] <= sm_prob_data[pj*16 +: 16];
        if (state == S_PR_COLLECT && ps_scan_valid)
            for (pj = 0; pj < SCL; pj = pj + 1)
                if (pj < {{(32-SCC){1'b0}}, ps_scan_cnt})
                    klist[{abank, cnt[LB-1:0] + pj[LB-1:0]}] <= ps_scan_idx[pj*LB +: LB];
        if (bstate == B_VRUN && tk_out_valid) vlist[{bbank, fi_b[LB-1:0]}] <= tk_out_index;
    end

    // ------------------------------------------------------------------ FSMs
    always @(posedge clk) begin
        if (!rst_n) begin
            state <= S_IDLE;
            desc <= {DESC_W{1'b0}};
            a_status <= 4'd0; a_lsb_fetched <= 1'b0; a_vsel <= 1'b0; a_skip <= 1'b0;
            a_max_msb <= 16'd0; a_max <= 16'd0; a_m <= T0; a_nv <= T0; a_beats <= 24'd0;
            a_cyc <= 32'd0; pr_mode <= 2'd0; cnt <= T0; lsb_pass <= 1'b0; err_a <= 1'b0;
            fi <= T0; op <= T0; clr_pipe <= 1'b0; abank <= 1'b0; keys_done <= 1'b0;
            tk_start <= 1'b0; tk_n <= T0; tk_k <= T0;
            fk_start <= 1'b0; fk_base <= {AW{1'b0}}; fk_stride <= 2'd0; sm_start <= 1'b0;
            sm_n_update <= 1'b0;
            s_valid <= 1'b0; s_codes <= {KL*D*12{1'b0}}; s_count <= {KLC{1'b0}}; s_pos <= T0;
            dbg_h <= 1'b0; dbg_nq <= T0;
            bstate <= B_IDLE;
            b_job_id <= 16'd0; b_head_id <= {HB{1'b0}}; b_vbits <= 4'd0; b_vbase <= {AW{1'b0}};
            b_acc_tok <= 1'b0; b_acc_head <= 1'b0; b_vsel <= 1'b0; bbank <= 1'b0;
            r_status <= 4'd0; r_lsb_fetched <= 1'b0; r_max_msb <= 16'd0; r_max <= 16'd0;
            r_m <= T0; r_nv <= T0; r_beats <= 24'd0; r_cycles <= 32'd0; b_cyc <= 32'd0;
            r_out <= {D*16{1'b0}}; r_abs <= 22'd0; err_b <= 1'b0; fi_b <= T0; op_b <= T0;
            clr_pipe_b <= 1'b0; fv_start <= 1'b0;
            vs_valid <= 1'b0; vs_codes <= {VL*D*12{1'b0}}; vs_prob <= {VL*16{1'b0}};
            vs_count <= {VLC{1'b0}}; vs_pos <= T0;
        end else begin
            // ============================================================ stage A
            tk_start <= 1'b0;
            fk_start <= 1'b0;
            sm_start <= 1'b0;
            sm_n_update <= 1'b0;
            clr_pipe <= 1'b0;
            a_cyc <= a_cyc + 32'd1;
            // K stage register
            if (cap) begin
                s_valid <= 1'b1;
                s_codes <= u_codes;
                s_count <= u_count;
                s_pos <= op;
                op <= op + {{(TB-KLC){1'b0}}, u_count};
            end else if (s_valid && dp_in_ready) begin
                s_valid <= 1'b0;
            end
            if (fk_idx_valid && fk_idx_ready) fi <= fi + fk_n;
            // end of a K fetch: count its beats; an AXI error drops the pass's data and ends
            // the job once the softmax has drained (below)
            if (in_kpass && fk_done) begin
                a_beats <= a_beats + fk_beats;
                if (fk_error != 2'd0) begin
                    err_a <= 1'b1;
                    clr_pipe <= 1'b1;
                    s_valid <= 1'b0;
                    a_status <= (fk_error == 2'd3) ? 4'd8 : 4'd7;
                end
            end
            case (state)
                S_IDLE: if (dbg_req) begin
                    if (b_empty) begin  // the readback sees every accepted job finished
                        dbg_h <= dbg_heads;
                        dbg_nq <= dbg_n;
                        state <= S_DBG_SCAN;
                    end
                end else if (desc_valid) begin
                    desc <= desc_data;
                    a_cyc <= 32'd1;
                    state <= S_CHECK;
                end
                S_CHECK: begin
                    a_status <= v_status;
                    a_lsb_fetched <= 1'b0; a_max_msb <= 16'd0; a_max <= 16'd0;
                    a_m <= T0; a_nv <= T0; a_beats <= 24'd0; a_vsel <= 1'b0;
                    a_skip <= 1'b0; keys_done <= 1'b0; lsb_pass <= 1'b0;
                    if (v_status != 4'd0) begin a_skip <= 1'b1; state <= S_HAND; end
                    else if (d_changes && !b_empty) state <= S_CHECK;  // hazard (section 11)
                    else if (d_clr_tok || d_clr_head || d_reselect || d_imp_shift != 5'd0)
                        state <= S_CLR;
                    else if (d_head_keep != H0) begin pr_mode <= 2'd0; state <= S_PR_SCAN; end
                    else if (d_tok_keep != T0) begin pr_mode <= 2'd1; state <= S_PR_SCAN; end
                    else state <= S_HEADCHK;
                end
                S_CLR: if (ps_op_ready) begin
                    if (d_head_keep != H0) begin pr_mode <= 2'd0; state <= S_PR_SCAN; end
                    else if (d_tok_keep != T0) begin pr_mode <= 2'd1; state <= S_PR_SCAN; end
                    else state <= S_HEADCHK;
                end
                S_PR_SCAN: if (ps_op_ready) begin
                    cnt <= T0;
                    state <= S_PR_COLLECT;
                end
                S_PR_COLLECT: begin
                    if (ps_scan_valid) cnt <= cnt + {{(TB-SCC){1'b0}}, ps_scan_cnt};
                    if (key_collect && ps_scan_valid && cnt == T0) begin
                        // first key: start the K MSB fetch and the softmax (S_PASS_START's
                        // work; the softmax gets its n when the scan ends)
                        fk_start <= 1'b1;
                        sm_start <= 1'b1;
                        fk_base <= d_kmsb;
                        fk_stride <= stride_of(d_msb);
                        clr_pipe <= 1'b1;
                        s_valid <= 1'b0;
                        fi <= T0; op <= T0; err_a <= 1'b0;
                    end
                    if (ps_scan_done) begin
                        if (pr_mode == 2'd2) begin
                            a_m <= ps_scan_count;
                            if (ps_scan_count == T0) begin
                                a_status <= 4'd2;
                                a_skip <= 1'b1;
                                state <= S_HAND;
                            end else begin
                                keys_done <= 1'b1;
                                sm_n_update <= 1'b1;  // n = a_m, in the next cycle
                                state <= S_PASS;
                            end
                        end else if (keep_n >= ps_scan_count) begin
                            if (pr_mode == 2'd0 && d_tok_keep != T0) begin
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
                    if (pr_mode == 2'd0 && d_tok_keep != T0) begin
                        pr_mode <= 2'd1; state <= S_PR_SCAN;
                    end else state <= S_HEADCHK;
                end
                S_HEADCHK: if (ps_op_ready) begin
                    if (!ps_head_kept) begin
                        a_status <= 4'd1;
                        a_skip <= 1'b1;
                        state <= S_HAND;
                    end else begin
                        pr_mode <= 2'd2;
                        state <= S_PR_SCAN;
                    end
                end
                S_PASS_START: begin  // start the K fetch of this pass (MSB or LSB plane)
                    fk_start <= 1'b1;
                    fk_base <= lsb_pass ? d_klsb : d_kmsb;
                    fk_stride <= stride_of(lsb_pass ? d_lsb : d_msb);
                    sm_start <= 1'b1;
                    clr_pipe <= 1'b1;
                    s_valid <= 1'b0;
                    fi <= T0; op <= T0; err_a <= 1'b0;
                    state <= S_PASS;
                end
                S_PASS: begin
                    if (sm_done) begin
                        if (err_a || (fk_done && fk_error != 2'd0)) begin
                            a_skip <= 1'b1;  // a_status already set (fetch ends first)
                            state <= S_HAND;
                        end else if (!lsb_pass) begin
                            a_max_msb <= sm_max_prob;
                            a_max <= sm_max_prob;
                            if (d_lsb != 4'd0 && sm_max_prob < d_thresh) begin
                                lsb_pass <= 1'b1;
                                a_lsb_fetched <= 1'b1;
                                state <= S_PASS_START;
                            end else state <= S_VSEL;
                        end else begin
                            a_max <= sm_max_prob;
                            state <= S_VSEL;
                        end
                    end
                end
                S_VSEL: begin  // the selection itself runs in stage B (B_VLOAD, B_VRUN)
                    if (d_v_topk != T0 && d_v_topk < a_m) begin
                        a_vsel <= 1'b1;
                        a_nv <= d_v_topk;
                    end else begin
                        a_vsel <= 1'b0;
                        a_nv <= a_m;
                    end
                    state <= S_HAND;
                end
                S_HAND: if (b_empty) begin  // hand the job to stage B; take the other bank
                    abank <= ~abank;
                    state <= S_IDLE;
                end
                S_DBG_SCAN: if (ps_op_ready) state <= S_DBG_COL;
                S_DBG_COL: begin
                    if ((dbg_take && (dbg_pos == 5'd31 || ps_scan_last)) || ps_scan_done)
                        state <= S_DBG_OUT;
                end
                S_DBG_OUT: if (dbg_ready) state <= dbg_win_last ? S_DBG_END : S_DBG_COL;
                S_DBG_END: if (!dbg_req) state <= S_IDLE;
                default: state <= S_IDLE;
            endcase

            // ============================================================ stage B
            fv_start <= 1'b0;
            clr_pipe_b <= 1'b0;
            b_cyc <= b_cyc + 32'd1;
            // V stage register
            if (cap_v) begin
                vs_valid <= 1'b1;
                vs_codes <= uv_codes;
                vs_count <= uv_count;
                vs_pos <= op_b;
                vs_prob <= v_probs;
                op_b <= op_b + {{(TB-VLC){1'b0}}, uv_count};
            end else if (vs_valid && pv_in_ready) begin
                vs_valid <= 1'b0;
            end
            if (fv_idx_valid && fv_idx_ready) fi_b <= fi_b + fv_n;
            case (bstate)
                B_IDLE: if (handoff) begin
                    b_job_id <= d_job_id; b_head_id <= d_head_id; b_vbits <= d_vbits;
                    b_vbase <= d_vbase; b_acc_tok <= d_acc_tok; b_acc_head <= d_acc_head;
                    b_vsel <= a_vsel; bbank <= abank;
                    r_status <= a_status; r_lsb_fetched <= a_lsb_fetched;
                    r_max_msb <= a_max_msb; r_max <= a_max; r_m <= a_m; r_nv <= a_nv;
                    r_beats <= a_beats; b_cyc <= a_cyc + 32'd1;
                    r_out <= {D*16{1'b0}}; r_abs <= 22'd0;
                    op_b <= T0;
                    bstate <= a_skip ? B_NEXT : (a_vsel ? B_VLOAD : B_START);
                end
                B_VLOAD: begin  // the job's probabilities into the top-k engine, TK_LL a cycle
                    op_b <= op_b + TK_LL_T;
                    if (vload_left <= TK_LL_T) begin
                        tk_start <= 1'b1;
                        tk_n <= r_m;
                        tk_k <= r_nv;
                        fi_b <= T0;
                        bstate <= B_VRUN;
                    end
                end
                B_VRUN: begin  // top-k(n = m, k = v_topk) -> V list of B's bank
                    if (tk_out_valid) fi_b <= fi_b + T1;
                    if (tk_done) bstate <= B_START;
                end
                B_START: begin  // start the V fetch
                    fv_start <= 1'b1;
                    clr_pipe_b <= 1'b1;
                    vs_valid <= 1'b0;
                    fi_b <= T0; op_b <= T0; err_b <= 1'b0;
                    bstate <= B_V;
                end
                B_V: begin
                    if (pv_out_valid && !err_b) begin
                        r_out <= pv_out;
                        r_abs <= pv_abs;
                        op_b <= T0;
                        bstate <= B_ACC_T;
                    end
                    // end of the V fetch: count its beats; an AXI error ends the job
                    if (fv_done) begin
                        r_beats <= r_beats + fv_beats;
                        if (fv_error != 2'd0) begin
                            err_b <= 1'b1;
                            clr_pipe_b <= 1'b1;
                            vs_valid <= 1'b0;
                            r_status <= (fv_error == 2'd3) ? 4'd8 : 4'd7;
                            bstate <= B_NEXT;
                        end
                    end
                end
                B_ACC_T: begin
                    if (!b_acc_tok || (ps_tacc_ready && op_b + tacc_n == r_m))
                        bstate <= B_ACC_H;
                    if (ps_tacc_valid && ps_tacc_ready) op_b <= op_b + tacc_n;
                end
                B_ACC_H: if (!b_acc_head || ps_hacc_ready) bstate <= B_NEXT;
                B_NEXT: begin
                    if (r_status >= 4'd7) begin
                        r_out <= {D*16{1'b0}};
                        r_lsb_fetched <= 1'b0; r_max_msb <= 16'd0; r_max <= 16'd0;
                        r_m <= T0; r_nv <= T0;
                    end else if (r_status != 4'd0) begin
                        r_m <= T0; r_nv <= T0;
                    end
                    r_cycles <= b_cyc;
                    bstate <= B_RESULT;
                end
                B_RESULT: if (res_ready) bstate <= B_IDLE;
                default: bstate <= B_IDLE;
            endcase
        end
    end
endmodule
