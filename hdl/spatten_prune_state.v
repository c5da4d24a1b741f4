// Cascade pruning state (docs/architecture.md, section 7; top-k semantics section 6).
//
// Holds the state that persists between jobs and the operations the core's job controller
// performs on it; the top-k engine itself is a separate block.
//
//   token_imp[L_MAX]  32-bit unsigned, saturating, reset 0   (RAM in LANES banks, entry t in
//                                                             bank t mod LANES, row t / LANES;
//                                                             each bank 1 synchronous read port
//                                                             + 1 write port, no reset: a
//                                                             per-entry "written" bitmap makes
//                                                             unwritten entries read as 0, so a
//                                                             clear is one cycle)
//   token_kept[L_MAX] bitmap, reset all 1                    (flops)
//   head_imp[H_MAX]   32-bit unsigned, saturating, reset 0   (flops)
//   head_kept[H_MAX]  bitmap, reset all 1                    (flops)
//
// Parameters: L_MAX a power of two >= 64; 1 <= H_MAX < L_MAX; LANES (entries per scan beat and
// per token-accumulation group) a power of two, 1..32. Other values fail elaboration (a missing
// module, spatten_prune_state_unsupported_parameters).
// LANES = 1 is the core's configuration: the ports and widths of before the parameter existed,
// the same behaviour cycle by cycle, plus four ports: the inputs scan_wide, scan_idx_only and
// tacc_count, ignored at LANES = 1 (an instance ties them off, e.g. 0 / 0 / 1, or leaves them
// unconnected, which Verilator -Wall reports as PINMISSING), and the output scan_count_beat
// (1 on every beat). At LANES > 1, scans with scan_wide = 0 and one-lane groups
// (tacc_count = 1) also behave cycle by cycle as at LANES = 1; only the rescale is faster
// (L_MAX / LANES + 2 cycles).
// Reset (rst_n low at a rising edge, synchronous) = the cleared state of both halves plus idle
// control; the importance RAM array itself is not reset (its "written" bitmap is).
//
// What may overlap: token and head accumulation with each other (both accepted in one cycle).
// A scan or a prune runs alone (both accumulation streams see ready = 0 meanwhile, commands wait
// for op_ready). The read ports are always live.
// Widths: LB = clog2(L_MAX) (token index), TB = clog2(L_MAX+1) (token count / limit n, 0..L_MAX),
// HB = clog2(H_MAX) (head index, 1 bit minimum), NB = clog2(LANES+1) (entries of a beat or a
// group). Multi-lane buses carry lane 0 in the low bits (lane j: [j*LB +: LB], [j*32 +: 32],
// [j*16 +: 16]).
//
// ---------------------------------------------------------------------------------- commands
// op_ready (out): the block is idle (no scan, no prune, no rescale, token-accumulate pipeline
// empty).
// clear_tokens, clear_heads, reselect, rescale, scan_start, prune_begin (in) are REQUESTS: hold
// one high (with its arguments stable) until a rising edge where op_ready = 1; that edge takes
// it. While any of them is high, tacc_ready and hacc_ready are 0, so a pending command drains
// the accumulation pipeline (at most 1 cycle) and then wins over the streams.
//   * clear_tokens: token_imp <- 0, token_kept <- all 1, in that one edge. clear_heads: same for
//     heads. Both may be requested together, and together with scan_start or prune_begin: the
//     clear takes effect first (the scan / prune sees the cleared state).
//   * reselect with reselect_n (0..L_MAX): token_kept[t] <- 1 for t < reselect_n, in that one
//     edge; importance untouched. May be taken together with the clears and rescale.
//   * rescale with rescale_shift (0..31): token_imp[t] <- token_imp[t] >> rescale_shift for
//     every t < L_MAX (section 7 step 3). Taken together with a clear_tokens it sees the cleared
//     importance. Scan: row i of every bank (entries i*LANES .. i*LANES + LANES-1) is read in
//     cycle i + 1 after the take edge and written back (entries written since the last clear
//     only) at the next edge; op_ready returns L_MAX / LANES + 2 cycles after the take edge
//     (1026 at L_MAX = 1024, LANES = 1; 130 at LANES = 8), whatever the shift (0 included). A
//     scan_start or prune_begin requested at the same edge stays pending until op_ready returns.
//   * scan_start with scan_heads (0 tokens, 1 heads), scan_all (0: kept entries only; 1: every
//     entry, a debug/test view of the importance RAM), scan_n (limit n: 0..L_MAX for tokens,
//     0..H_MAX for heads; larger n for heads acts as H_MAX), scan_wide (LANES > 1: up to LANES
//     entries per beat; 0: one, as at LANES = 1) and scan_idx_only (with scan_wide: indices
//     only, see "scan").
//   * prune_begin with prune_heads (0 tokens, 1 heads) and prune_n (limit n). If prune_begin and
//     scan_start are both high, prune_begin is taken and scan_start stays pending.
//
// ---------------------------------------------------------------------------------- token accumulation
// tacc_valid / tacc_ready, a group of tacc_count[NB] lanes (1..LANES; ignored at LANES = 1: a
// group is one entry; 0 at LANES > 1: an empty group), lane j: tacc_idx[LANES*LB] and
// tacc_prob[LANES*16] (Q1.15, any 16-bit value accepted):
//   token_imp[idx_j] <- min(token_imp[idx_j] + prob_j, 2^32-1) for j < tacc_count.
// The group is taken whole at a rising edge with tacc_valid = tacc_ready = 1. Any indices are
// legal (the core sends distinct ascending ones); the result is that of the lanes applied one
// after the other (saturating sums of non-negative values: the order does not matter).
// Banks: in each cycle every bank takes the lowest pending lane whose index is in it (the lanes
// of the group just taken, or those an earlier group left over), so a group whose most used
// bank has d of its lanes issues over d cycles: tacc_ready is 0 for the d - 1 cycles after its
// take edge. Consecutive indices (d = 1): one group of LANES per cycle, sustained.
// tacc_ready = 1 while no scan / prune runs, no group is left over, and none of the command
// inputs is high (it depends combinationally on those inputs, not on tacc_valid).
// The kept bitmap is not consulted: the controller sends the kept tokens (run_job's T).
// Per bank a two-stage read-modify-write (read at the issue edge, add and write at the next
// edge) with forwarding of the bank's last write, so back-to-back entries with the SAME index
// are exact (any index sequence is legal). The update is visible to a scan started after
// op_ready returns (op_ready is 0 while an entry is in the second stage or lanes are left
// over, so a pending command waits at most d cycles after the last group).
//
// ---------------------------------------------------------------------------------- head accumulation
// hacc_valid / hacc_ready, hacc_idx[HB], hacc_val[22]: head_imp[idx] <- min(head_imp[idx] + val,
// 2^32-1) at the accept edge (single cycle, one per cycle; idx >= H_MAX is ignored). hacc_ready
// has the same condition as tacc_ready; both streams may be accepted in the same cycle.
//
// ---------------------------------------------------------------------------------- scan
// After scan_start is taken, the block emits on scan_valid / scan_ready the selected entries
// with index < n in ascending index order, in BEATS: scan_count_beat[NB] entries (1..LANES) in
// lanes 0.. of scan_idx[LANES*LB] / scan_imp[LANES*32] (importance), ascending from lane 0
// (lanes past scan_count_beat read 0), scan_last on the beat holding the final entry.
// Selected = kept (scan_all = 0) or all (scan_all = 1).
// A beat holds one entry unless scan_wide = 1 (at LANES > 1). Then it takes the next selected
// entries in ascending order from a window of the rest of the current 32-entry chunk plus the
// next non-empty chunk, at most LANES, and stops before the first entry whose bank (index mod
// LANES) the beat already reads (each bank is read once per cycle). With scan_idx_only = 1 the
// bank rule is dropped (the importance is not read: scan_imp lanes read 0), for a key list.
// Head scans follow the same rules (head importance is in flops; the bank rule applies anyway).
// So a beat has LANES entries when the next LANES selected entries are consecutive (all kept:
// L_MAX / LANES beats), fewer where the kept pattern is sparse or its banks repeat.
// Measured at L_MAX = 1024, LANES = 8 (tests/hdl/cocotb_prune_state_wide.py, wide_rules, one
// seed; entries per cycle from the take edge to scan_done) with 100 / 50 / 25 / 10 % kept
// after a top-k prune: 7.8 / 5.2 / 3.9 / 3.2, index only 7.8 / 7.4 / 6.9 / 5.1.
// scan_valid and the beat are registered (a 2-beat output FIFO) and held until scan_ready;
// scan_ready may be held low at any time (full back-pressure).
// End: scan_done is a one-cycle pulse in the cycle after the handshake of the scan_last beat,
// or, for an EMPTY scan (no selected entry, e.g. n = 0), two cycles after the scan_start edge
// with no beat emitted. scan_count[TB] (entries emitted) is valid from the scan_done cycle and
// held until the next scan_start is taken. op_ready is 1 again in the scan_done cycle.
// Timing (scan_ready held 1): take edge = cycle 0; cycle 1 finds the first non-empty 32-entry
// chunk; one beat is issued per cycle from cycle 2 on, the next non-empty chunks being found in
// the cycle that issues the beat (empty chunks cost nothing, the search is a priority encoder
// over the per-chunk "any selected" bits); the beat issued in cycle c is on scan_* from cycle
// c + 2. So B beats (K entries in narrow mode: B = K): last handshake in cycle B + 3, scan_done
// in cycle B + 4, whatever n and the pattern of kept bits (n = 1024 all kept: 1028 narrow,
// 132 wide at LANES = 8).
//
// ---------------------------------------------------------------------------------- prune apply
// After prune_begin is taken: one cycle clears the kept bits of entries < n (tokens or heads;
// entries >= n untouched), then win_ready = 1 and each winner index on win_valid / win_idx[LB]
// sets its kept bit again (heads: win_idx >= H_MAX ignored; the caller sends indices < n). The
// prune finishes at the handshake of an entry with win_last = 1, or at a cycle with prune_end = 1
// (a pulse, looked at only while win_ready = 1; an entry handshaken in that cycle is applied).
// op_ready returns the cycle after. Zero winners: prune_begin, then prune_end.
// The core's flow: scan (kept, n) -> top-k engine -> winners (ascending) -> prune apply, or no
// prune at all when keep >= number of candidates (the model's prune_tokens/prune_heads no-op).
// A scan is ascending, so the top-k engine's tie rule (lower position wins) is the model's
// (lower token / head index wins). A prune with zero winners is model.prune_*(n, 0).
//
// ---------------------------------------------------------------------------------- read ports
// Combinational (current register state, no latency): rd_head_kept = head_kept[rd_head_id],
// rd_head_imp = head_imp[rd_head_id] (0 / 0 for rd_head_id >= H_MAX), rd_token_kept =
// token_kept[rd_token_idx], head_kept_map = head_kept. They change at the edge that updates the
// state (clear, prune clear, winner, accumulation).
module spatten_prune_state #(
    parameter integer L_MAX = 1024,
    parameter integer H_MAX = 32,
    parameter integer LANES = 1
) (
    input  wire                            clk,
    input  wire                            rst_n,
    // commands
    output wire                            op_ready,
    input  wire                            clear_tokens,
    input  wire                            clear_heads,
    input  wire                            reselect,
    input  wire [$clog2(L_MAX+1)-1:0]      reselect_n,
    input  wire                            rescale,
    input  wire [4:0]                      rescale_shift,
    input  wire                            scan_start,
    input  wire                            scan_heads,
    input  wire                            scan_all,
    input  wire                            scan_wide,
    input  wire                            scan_idx_only,
    input  wire [$clog2(L_MAX+1)-1:0]      scan_n,
    input  wire                            prune_begin,
    input  wire                            prune_heads,
    input  wire [$clog2(L_MAX+1)-1:0]      prune_n,
    // token importance accumulation
    input  wire                            tacc_valid,
    output wire                            tacc_ready,
    input  wire [$clog2(LANES+1)-1:0]      tacc_count,
    input  wire [LANES*$clog2(L_MAX)-1:0]  tacc_idx,
    input  wire [LANES*16-1:0]             tacc_prob,
    // head importance accumulation
    input  wire                            hacc_valid,
    output wire                            hacc_ready,
    input  wire [((H_MAX > 1) ? $clog2(H_MAX) : 1)-1:0] hacc_idx,
    input  wire [21:0]                     hacc_val,
    // scan output
    output wire                            scan_valid,
    input  wire                            scan_ready,
    output wire [$clog2(LANES+1)-1:0]      scan_count_beat,
    output wire [LANES*$clog2(L_MAX)-1:0]  scan_idx,
    output wire [LANES*32-1:0]             scan_imp,
    output wire                            scan_last,
    output reg                             scan_done,
    output reg  [$clog2(L_MAX+1)-1:0]      scan_count,
    // prune winners
    input  wire                            win_valid,
    output wire                            win_ready,
    input  wire [$clog2(L_MAX)-1:0]        win_idx,
    input  wire                            win_last,
    input  wire                            prune_end,
    // read ports
    input  wire [((H_MAX > 1) ? $clog2(H_MAX) : 1)-1:0] rd_head_id,
    output wire                            rd_head_kept,
    output wire [31:0]                     rd_head_imp,
    input  wire [$clog2(L_MAX)-1:0]        rd_token_idx,
    output wire                            rd_token_kept,
    output wire [H_MAX-1:0]                head_kept_map
);
    localparam integer LB  = $clog2(L_MAX);
    localparam integer TB  = $clog2(L_MAX + 1);
    localparam integer HB  = (H_MAX > 1) ? $clog2(H_MAX) : 1;
    localparam integer CW  = 32;                 // scan chunk width (entries)
    localparam integer NCH = L_MAX / CW;         // chunks
    localparam integer CB  = $clog2(NCH);        // chunk index width (L_MAX >= 64: >= 1)
    localparam [31:0]  IMP_MAX = 32'hFFFF_FFFF;
    localparam integer NB  = $clog2(LANES + 1);  // entries per beat / group (0..LANES)
    localparam integer LP  = $clog2(LANES);      // bank bits of an index (0 at LANES = 1)
    localparam integer BW  = (LP > 0) ? LP : 1;  // width of a bank number
    localparam integer RB  = LB - LP;            // row address of a bank
    localparam integer ROWS = L_MAX / LANES;     // entries per bank
    localparam [NB-1:0] LANES_NB = LANES[NB-1:0];
    localparam [NB-1:0] ONE_NB   = {{(NB-1){1'b0}}, 1'b1};

    // Test-only fault injection (tests/hdl/test_prune_state.py expects these builds to fail):
    // 1 = the last lane (LANES - 1) of a token group is dropped; 2 = the wide scan ignores bank
    // conflicts (two lanes reading one bank in the same cycle: one of them gets the other's
    // importance); 3 = a token group's lanes that conflict with an earlier lane's bank are
    // dropped instead of taking another cycle.
`ifdef SPATTEN_PRUNE_STATE_MUTANT
    localparam integer MUTANT = `SPATTEN_PRUNE_STATE_MUTANT;
`else
    localparam integer MUTANT = 0;
`endif

    generate
        if (LANES < 1 || LANES > CW || (1 << LP) != LANES || L_MAX < 64 ||
            (1 << LB) != L_MAX || H_MAX < 1 || H_MAX >= L_MAX) begin : g_bad
            spatten_prune_state_unsupported_parameters u_unsupported ();
        end
    endgenerate

    localparam [2:0] S_IDLE = 3'd0, S_SCAN = 3'd1, S_SDRAIN = 3'd2, S_PCLR = 3'd3,
                     S_PRUNE = 3'd4, S_RESC = 3'd5;

    // index = row * LANES + bank: bank = the low LP bits, row = the rest
    /* verilator lint_off UNUSEDSIGNAL */
    function [BW-1:0] bank_of;
        input [LB-1:0] i;
        begin
            bank_of = (LANES > 1) ? i[BW-1:0] : {BW{1'b0}};
        end
    endfunction

    function [RB-1:0] row_of;
        input [LB-1:0] i;
        begin
            row_of = i[LB-1:LP];
        end
    endfunction
    /* verilator lint_on UNUSEDSIGNAL */

    // ------------------------------------------------------------------ state
    reg  [2:0]       state;
    reg  [L_MAX-1:0] token_kept;
    reg  [L_MAX-1:0] written;          // token_imp entry written since the last clear
    reg  [H_MAX-1:0] head_kept;
    reg  [31:0]      head_imp [0:H_MAX-1];

    // importance RAM: LANES banks (entry t in bank t mod LANES, row t / LANES), each with one
    // synchronous read port and one write port
    wire [LANES*RB-1:0] bk_raddr;
    wire [LANES-1:0]    bk_we;
    wire [LANES*RB-1:0] bk_waddr;
    wire [LANES*32-1:0] bk_wdata;
    wire [LANES*32-1:0] bk_rdata;
    genvar gi;
    generate
        for (gi = 0; gi < LANES; gi = gi + 1) begin : g_bank
            reg [31:0] imp_ram [0:ROWS-1];
            reg [31:0] ram_rdata;
            always @(posedge clk) begin
                if (bk_we[gi])
                    imp_ram[bk_waddr[gi*RB +: RB]] <= bk_wdata[gi*32 +: 32];
                ram_rdata <= imp_ram[bk_raddr[gi*RB +: RB]];
            end
            assign bk_rdata[gi*32 +: 32] = ram_rdata;
        end
    endgenerate

    // command latches
    reg              op_heads;         // scan / prune works on heads
    reg              op_all;           // scan: every entry
    reg              op_wide;          // scan: up to LANES entries per beat
    reg              op_idx_only;      // wide scan: indices only (importance lanes read 0)
    reg  [TB-1:0]    op_n;

    // ------------------------------------------------------------------ command acceptance
    reg  [LANES-1:0] s1_valid;         // token accumulation, stage 2 (add + write), per bank
    reg              tr_pend;          // a token group's lanes still to issue (bank conflicts)
    reg              rs_wv;            // rescale: the row read last cycle is written now
    wire idle      = (state == S_IDLE);
    wire cmd_req   = clear_tokens | clear_heads | reselect | rescale | scan_start | prune_begin;
    assign op_ready   = idle & ~(|s1_valid) & ~rs_wv & ~tr_pend;
    assign tacc_ready = idle & ~cmd_req & ~tr_pend;
    assign hacc_ready = idle & ~cmd_req;
    wire clr_tok_go = op_ready & clear_tokens;
    wire clr_hd_go  = op_ready & clear_heads;
    wire resel_go   = op_ready & reselect;
    wire resc_go    = op_ready & rescale;
    wire prune_go   = op_ready & prune_begin & ~rescale;
    wire scan_go    = op_ready & scan_start & ~prune_begin & ~rescale;
    // tokens below reselect_n (reselect_n = L_MAX: all ones)
    wire [L_MAX-1:0] lt_resel = ~({L_MAX{1'b1}} << reselect_n);

    // ------------------------------------------------------------------ masks below n
    // entry index < op_n (op_n = L_MAX shifts every bit out: all ones)
    wire [L_MAX-1:0] lt_n = ~({L_MAX{1'b1}} << op_n);
    // entries the scan selects before the limit (a head scan: only indices < H_MAX)
    wire [L_MAX-1:0] head_sel = {{(L_MAX-H_MAX){1'b0}}, head_kept | {H_MAX{op_all}}};
    wire [L_MAX-1:0] src_map  = op_heads ? head_sel : (token_kept | {L_MAX{op_all}});
    wire [L_MAX-1:0] sel_map = src_map & lt_n;

    wire [NCH-1:0] chunk_nz;
    generate
        for (gi = 0; gi < NCH; gi = gi + 1) begin : g_ch
            assign chunk_nz[gi] = |sel_map[gi*CW +: CW];
        end
    endgenerate

    // lowest set bit of the chunk vector
    function [CB-1:0] ffs_ch;
        input [NCH-1:0] v;
        integer k;
        begin
            ffs_ch = {CB{1'b0}};
            for (k = NCH - 1; k >= 0; k = k - 1)
                if (v[k]) ffs_ch = k[CB-1:0];
        end
    endfunction

    // ------------------------------------------------------------------ scan engine
    reg  [CW-1:0]  pend;               // selected entries of chunk cur_c not yet issued
    reg  [CB-1:0]  cur_c;
    reg  [TB-1:0]  issued;             // entries issued so far
    reg            b_valid;            // RAM read in flight (issued last cycle)
    reg  [NB-1:0]  b_cnt;
    reg  [LANES*LB-1:0] b_idx;
    reg            b_last;

    // 2-entry output FIFO of beats
    reg  [NB-1:0]       f_beat [0:1];
    reg  [LANES*LB-1:0] f_idx  [0:1];
    reg  [LANES*32-1:0] f_imp  [0:1];
    reg  [1:0]     f_last;
    reg            f_wp, f_rp;
    reg  [1:0]     f_cnt;

    // chunks after cur_c (or all chunks, before the first load)
    wire           have     = (pend != {CW{1'b0}});
    wire [NCH-1:0] above = have ? ({NCH{1'b1}} << ({1'b0, cur_c} + 1'b1)) : {NCH{1'b1}};
    wire [NCH-1:0] next_cand  = chunk_nz & above;
    wire           next_found = |next_cand;
    wire [CB-1:0]  next_c     = ffs_ch(next_cand);
    wire [CW-1:0]  next_bits  = sel_map[next_c*CW +: CW];
    // the non-empty chunk after next_c (next_cand less its lowest set bit): where the scan
    // goes on after a beat that took the rest of cur_c and the whole of next_c
    wire [NCH-1:0] next2_cand  = next_cand & (next_cand - 1'b1);
    wire           next2_found = |next2_cand;
    wire [CB-1:0]  next2_c     = ffs_ch(next2_cand);
    wire [CW-1:0]  next2_bits  = sel_map[next2_c*CW +: CW];

    // The beat issued from the window {next chunk, pend} (a beat may go on into the next
    // non-empty chunk): its lowest pending entries in ascending order, at most c_lim of them,
    // stopping before the first entry whose bank (position mod LANES: a chunk starts at a
    // multiple of LANES) the beat already reads, so every bank is read once (not in an
    // index-only scan, which reads no importance).
    wire [NB-1:0]  c_lim = op_wide ? LANES_NB : ONE_NB;
    wire [2*CW-1:0] c_win = {next_found ? next_bits : {CW{1'b0}}, pend};
    reg  [2*CW-1:0] c_take;            // window bits in the beat
    reg  [NB-1:0]  c_cnt;              // entries in the beat (>= 1 when pend != 0)
    reg  [LANES*6-1:0] c_pos;          // lane j: position in the window
    reg  [LANES*6-1:0] c_bpos;         // bank b: position of its entry in the window
    reg  [LANES-1:0]   c_used;         // banks read by the beat
    reg            c_stop;
    integer k;
    always @(*) begin
        c_take = {(2*CW){1'b0}};
        c_cnt  = {NB{1'b0}};
        c_pos  = {(LANES*6){1'b0}};
        c_bpos = {(LANES*6){1'b0}};
        c_used = {LANES{1'b0}};
        c_stop = 1'b0;
        for (k = 0; k < 2 * CW; k = k + 1) begin
            if (c_win[k] && !c_stop) begin
                if (c_cnt == c_lim ||
                    (c_used[k % LANES] && !op_idx_only && MUTANT != 2)) begin
                    c_stop = 1'b1;
                end else begin
                    c_take[k]                    = 1'b1;
                    c_pos[c_cnt * 6 +: 6]        = k[5:0];
                    c_bpos[(k % LANES) * 6 +: 6] = k[5:0];
                    c_used[k % LANES]            = 1'b1;
                    c_cnt                        = c_cnt + ONE_NB;
                end
            end
        end
    end

    wire [CW-1:0]  rem_lo   = pend & ~c_take[CW-1:0];
    wire [CW-1:0]  rem_hi   = c_win[2*CW-1:CW] & ~c_take[2*CW-1:CW];
    wire           pop      = scan_valid & scan_ready;
    wire [1:0]     occ      = f_cnt + {1'b0, b_valid};
    wire           can_iss  = (occ < 2'd2) | pop;
    wire           issue    = (state == S_SCAN) & have & can_iss;
    wire           iss_last = (rem_lo == {CW{1'b0}}) & (rem_hi == {CW{1'b0}}) &
                              ~(next_found & next2_found);

    // index of window position p (6 bits)
    function [LB-1:0] wpos_idx;
        input [5:0] p;
        input [CB-1:0] lo_c;
        input [CB-1:0] hi_c;
        begin
            wpos_idx = {p[5] ? hi_c : lo_c, p[4:0]};
        end
    endfunction

    wire [LANES*LB-1:0] iss_idx;       // lane j: index of the beat's entry j
    wire [LANES*RB-1:0] iss_row;       // bank b: row its entry of the beat is read from
    wire [LANES*LB-1:0] b_idx_m;       // b_idx with the lanes past b_cnt zeroed
    wire [LANES*32-1:0] b_imp;         // importance of the beat read last cycle
    generate
        for (gi = 0; gi < LANES; gi = gi + 1) begin : g_scan_lane
            wire [LB-1:0] bpos_idx = wpos_idx(c_bpos[gi*6 +: 6], cur_c, next_c);
            wire [LB-1:0] lidx     = b_idx[gi*LB +: LB];
            wire          lane_on  = (gi < b_cnt) & ~op_idx_only;
            // a head scan only selects indices < H_MAX; a token entry never written reads 0
            wire [31:0]   limp     = op_heads ? head_imp[lidx[HB-1:0]]
                                   : (written[lidx] ? bk_rdata[bank_of(lidx)*32 +: 32] : 32'd0);
            assign iss_idx[gi*LB +: LB] = wpos_idx(c_pos[gi*6 +: 6], cur_c, next_c);
            assign iss_row[gi*RB +: RB] = row_of(bpos_idx);
            assign b_idx_m[gi*LB +: LB] = (gi < b_cnt) ? lidx : {LB{1'b0}};
            assign b_imp[gi*32 +: 32]   = lane_on ? limp : 32'd0;
        end
    endgenerate

    assign scan_valid      = (f_cnt != 2'd0);
    assign scan_count_beat = f_beat[f_rp];
    assign scan_idx        = f_idx[f_rp];
    assign scan_imp        = f_imp[f_rp];
    assign scan_last       = f_last[f_rp];

    // ------------------------------------------------------------------ token accumulation
    // A group is taken whole at tacc_valid & tacc_ready. Each cycle every bank takes the
    // lowest-numbered pending lane that maps to it (from the group just taken, or from the
    // remainder tr_* of an earlier one); lanes left over (bank conflicts) go to tr_* and
    // tacc_ready is 0 until they have issued. Per bank the pipeline is the one-entry one: read
    // at the issue edge, add and write at the next, forwarding of the bank's last write.
    wire               tacc_go = tacc_valid & tacc_ready;
    reg  [LANES-1:0]   tr_mask;
    reg  [LANES*LB-1:0] tr_idx;
    reg  [LANES*16-1:0] tr_prob;
    wire [LANES-1:0]   t_lane_v;       // lanes of the group just taken
    generate
        for (gi = 0; gi < LANES; gi = gi + 1) begin : g_tacc_lane
            if (LANES == 1) begin : g_one
                assign t_lane_v[gi] = tacc_go;  // a group is one entry: tacc_count ignored
                wire unused_tacc_count = ^tacc_count;
            end else begin : g_many
                assign t_lane_v[gi] = tacc_go & (gi < tacc_count) &
                                      ~((MUTANT == 1) & (gi == LANES - 1));
            end
        end
    endgenerate
    wire [LANES-1:0]    ts_v    = tr_pend ? tr_mask : t_lane_v;
    wire [LANES*LB-1:0] ts_idx  = tr_pend ? tr_idx : tacc_idx;
    wire [LANES*16-1:0] ts_prob = tr_pend ? tr_prob : tacc_prob;

    reg  [LANES-1:0]    t_issue;       // lanes issued this cycle
    reg  [LANES-1:0]    tb_v;          // bank b issues an entry this cycle
    reg  [LANES*LB-1:0] tb_idx;
    reg  [LANES*16-1:0] tb_prob;
    reg  [BW-1:0]       t_bk;
    integer j;
    always @(*) begin
        t_issue = {LANES{1'b0}};
        tb_v    = {LANES{1'b0}};
        tb_idx  = {(LANES*LB){1'b0}};
        tb_prob = {(LANES*16){1'b0}};
        t_bk    = {BW{1'b0}};
        for (j = 0; j < LANES; j = j + 1) begin
            t_bk = bank_of(ts_idx[j*LB +: LB]);
            if (ts_v[j] && !tb_v[t_bk]) begin
                t_issue[j]             = 1'b1;
                tb_v[t_bk]             = 1'b1;
                tb_idx[t_bk*LB +: LB]  = ts_idx[j*LB +: LB];
                tb_prob[t_bk*16 +: 16] = ts_prob[j*16 +: 16];
            end
        end
    end
    wire [LANES-1:0] t_rest = (MUTANT == 3) ? {LANES{1'b0}} : (ts_v & ~t_issue);

    reg  [LANES*LB-1:0] s1_idx;
    reg  [LANES*16-1:0] s1_prob;
    reg  [LANES-1:0]    fw_valid;      // a write to the bank happened at the last edge
    reg  [LANES*LB-1:0] fw_idx;
    reg  [LANES*32-1:0] fw_data;
    wire [LANES*32-1:0] s1_new;
    generate
        for (gi = 0; gi < LANES; gi = gi + 1) begin : g_tacc_bank
            wire [LB-1:0] sidx = s1_idx[gi*LB +: LB];
            wire [31:0] s1_old = (fw_valid[gi] && fw_idx[gi*LB +: LB] == sidx)
                                 ? fw_data[gi*32 +: 32]
                                 : (written[sidx] ? bk_rdata[gi*32 +: 32] : 32'd0);
            wire [32:0] s1_sum = {1'b0, s1_old} + {17'd0, s1_prob[gi*16 +: 16]};
            assign s1_new[gi*32 +: 32] = s1_sum[32] ? IMP_MAX : s1_sum[31:0];
        end
    endgenerate

    // ------------------------------------------------------------------ rescale scan
    reg  [RB-1:0]  rs_i;               // row read this cycle (every bank)
    reg  [RB-1:0]  rs_widx;            // row read last cycle (written now)
    reg  [4:0]     rs_shift;

    // the rescale never overlaps the accumulation (op_ready = 0 while either runs)
    generate
        for (gi = 0; gi < LANES; gi = gi + 1) begin : g_bank_port
            wire [31:0] rs_new = bk_rdata[gi*32 +: 32] >> rs_shift;
            // index of bank gi's entry in row rs_widx
            wire [LB-1:0] rs_eidx;
            if (LANES > 1) begin : g_rs_many
                assign rs_eidx = {rs_widx, gi[BW-1:0]};
            end else begin : g_rs_one
                assign rs_eidx = rs_widx;
            end
            assign bk_raddr[gi*RB +: RB] = (state == S_SCAN) ? iss_row[gi*RB +: RB]
                                         : (state == S_RESC) ? rs_i
                                         : row_of(tb_idx[gi*LB +: LB]);
            assign bk_we[gi]    = s1_valid[gi] | (rs_wv & written[rs_eidx]);
            assign bk_waddr[gi*RB +: RB] = rs_wv ? rs_widx : row_of(s1_idx[gi*LB +: LB]);
            assign bk_wdata[gi*32 +: 32] = rs_wv ? rs_new : s1_new[gi*32 +: 32];
        end
    endgenerate

    // ------------------------------------------------------------------ head accumulation
    wire           hacc_go = hacc_valid & hacc_ready &
                             ({{(32-HB){1'b0}}, hacc_idx} < H_MAX);
    wire [32:0]    h_sum   = {1'b0, head_imp[hacc_idx]} + {11'd0, hacc_val};
    wire [31:0]    h_new   = h_sum[32] ? IMP_MAX : h_sum[31:0];

    // ------------------------------------------------------------------ prune
    assign win_ready = (state == S_PRUNE);
    wire win_go  = win_valid & win_ready;
    wire win_fin = win_ready & ((win_valid & win_last) | prune_end);

    // ------------------------------------------------------------------ read ports
    wire rd_h_ok = ({{(32-HB){1'b0}}, rd_head_id} < H_MAX);
    assign rd_head_kept  = rd_h_ok & head_kept[rd_head_id];
    assign rd_head_imp   = rd_h_ok ? head_imp[rd_head_id] : 32'd0;
    assign rd_token_kept = token_kept[rd_token_idx];
    assign head_kept_map = head_kept;

    // ------------------------------------------------------------------ sequential
    integer h;
    always @(posedge clk) begin
        if (!rst_n) begin
            state      <= S_IDLE;
            token_kept <= {L_MAX{1'b1}};
            written    <= {L_MAX{1'b0}};
            head_kept  <= {H_MAX{1'b1}};
            for (h = 0; h < H_MAX; h = h + 1)
                head_imp[h] <= 32'd0;
            op_heads   <= 1'b0;
            op_all     <= 1'b0;
            op_wide    <= 1'b0;
            op_idx_only <= 1'b0;
            op_n       <= {TB{1'b0}};
            pend       <= {CW{1'b0}};
            cur_c      <= {CB{1'b0}};
            issued     <= {TB{1'b0}};
            b_valid    <= 1'b0;
            b_cnt      <= {NB{1'b0}};
            b_idx      <= {(LANES*LB){1'b0}};
            b_last     <= 1'b0;
            f_wp       <= 1'b0;
            f_rp       <= 1'b0;
            f_cnt      <= 2'd0;
            f_last     <= 2'b00;
            scan_done  <= 1'b0;
            scan_count <= {TB{1'b0}};
            s1_valid   <= {LANES{1'b0}};
            s1_idx     <= {(LANES*LB){1'b0}};
            s1_prob    <= {(LANES*16){1'b0}};
            fw_valid   <= {LANES{1'b0}};
            fw_idx     <= {(LANES*LB){1'b0}};
            fw_data    <= {(LANES*32){1'b0}};
            tr_pend    <= 1'b0;
            tr_mask    <= {LANES{1'b0}};
            tr_idx     <= {(LANES*LB){1'b0}};
            tr_prob    <= {(LANES*16){1'b0}};
            rs_wv      <= 1'b0;
            rs_i       <= {RB{1'b0}};
            rs_widx    <= {RB{1'b0}};
            rs_shift   <= 5'd0;
        end else begin
            scan_done <= 1'b0;

            // token accumulation pipeline (per bank)
            s1_valid <= tb_v;
            for (h = 0; h < LANES; h = h + 1) begin
                if (tb_v[h]) begin
                    s1_idx[h*LB +: LB]  <= tb_idx[h*LB +: LB];
                    s1_prob[h*16 +: 16] <= tb_prob[h*16 +: 16];
                end
                if (s1_valid[h]) begin
                    fw_idx[h*LB +: LB]  <= s1_idx[h*LB +: LB];
                    fw_data[h*32 +: 32] <= s1_new[h*32 +: 32];
                end
            end
            fw_valid <= s1_valid;
            if (tacc_go || tr_pend) begin
                tr_pend <= |t_rest;
                tr_mask <= t_rest;
                if (!tr_pend) begin
                    tr_idx  <= tacc_idx;
                    tr_prob <= tacc_prob;
                end
            end

            // head accumulation
            if (hacc_go)
                head_imp[hacc_idx] <= h_new;

            // rescale write-back pipeline
            rs_wv   <= (state == S_RESC);
            rs_widx <= rs_i;

            // clears and reselect (taken only while idle with the pipeline empty)
            if (clr_tok_go) begin
                token_kept <= {L_MAX{1'b1}};
                written    <= {L_MAX{1'b0}};
            end else begin
                if (resel_go)
                    token_kept <= token_kept | lt_resel;
                for (h = 0; h < LANES; h = h + 1)
                    if (s1_valid[h])
                        written[s1_idx[h*LB +: LB]] <= 1'b1;
            end
            if (clr_hd_go) begin
                head_kept <= {H_MAX{1'b1}};
                for (h = 0; h < H_MAX; h = h + 1)
                    head_imp[h] <= 32'd0;
            end

            // output FIFO
            if (b_valid) begin
                f_beat[f_wp] <= b_cnt;
                f_idx[f_wp]  <= b_idx_m;
                f_imp[f_wp]  <= b_imp;
                f_last[f_wp] <= b_last;
                f_wp         <= ~f_wp;
            end
            if (pop)
                f_rp <= ~f_rp;
            f_cnt <= f_cnt + {1'b0, b_valid} - {1'b0, pop};

            b_valid <= issue;
            if (issue) begin
                b_cnt  <= c_cnt;
                b_idx  <= iss_idx;
                b_last <= iss_last;
            end

            case (state)
                S_IDLE: begin
                    if (resc_go) begin
                        rs_i     <= {RB{1'b0}};
                        rs_shift <= rescale_shift;
                        state    <= S_RESC;
                    end else if (prune_go) begin
                        op_heads <= prune_heads;
                        op_n     <= prune_n;
                        state    <= S_PCLR;
                    end else if (scan_go) begin
                        op_heads <= scan_heads;
                        op_all   <= scan_all;
                        // LANES = 1: scan_wide may be left unconnected
                        op_wide  <= (LANES > 1) & scan_wide;
                        op_idx_only <= (LANES > 1) & scan_wide & scan_idx_only;
                        op_n     <= scan_n;
                        pend     <= {CW{1'b0}};
                        issued   <= {TB{1'b0}};
                        state    <= S_SCAN;
                    end
                end
                S_SCAN: begin
                    if (!have) begin
                        // first load (pend is 0 only before the first entry)
                        if (next_found) begin
                            pend  <= next_bits;
                            cur_c <= next_c;
                        end else begin
                            scan_count <= {TB{1'b0}};
                            scan_done  <= 1'b1;
                            state      <= S_IDLE;
                        end
                    end else if (issue) begin
                        issued <= issued + {{(TB-NB){1'b0}}, c_cnt};
                        if (rem_lo != {CW{1'b0}}) begin
                            pend <= rem_lo;
                        end else if (rem_hi != {CW{1'b0}}) begin
                            pend  <= rem_hi;
                            cur_c <= next_c;
                        end else if (!iss_last) begin
                            // the beat took the whole of next_c: go on with the chunk after
                            pend  <= next2_bits;
                            cur_c <= next2_c;
                        end else begin
                            pend  <= {CW{1'b0}};
                            state <= S_SDRAIN;
                        end
                    end
                end
                S_SDRAIN: begin
                    if (pop && scan_last) begin
                        scan_count <= issued;
                        scan_done  <= 1'b1;
                        state      <= S_IDLE;
                    end
                end
                S_PCLR: begin
                    if (op_heads)
                        head_kept <= head_kept & ~lt_n[H_MAX-1:0];
                    else
                        token_kept <= token_kept & ~lt_n;
                    state <= S_PRUNE;
                end
                S_RESC: begin
                    rs_i <= rs_i + 1'b1;
                    if (rs_i == {RB{1'b1}})
                        state <= S_IDLE;
                end
                S_PRUNE: begin
                    if (win_go) begin
                        if (op_heads) begin
                            if ({{(32-LB){1'b0}}, win_idx} < H_MAX)
                                head_kept[win_idx[HB-1:0]] <= 1'b1;
                        end else begin
                            token_kept[win_idx] <= 1'b1;
                        end
                    end
                    if (win_fin)
                        state <= S_IDLE;
                end
                default: state <= S_IDLE;
            endcase
        end
    end
endmodule
