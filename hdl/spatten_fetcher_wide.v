// Wide key/value fetcher: up to IDX_LANES kept token indices per cycle in, AXI4 read bursts
// out on N_CH channels (an AR per channel per cycle), every channel's R beat taken in the same
// cycle, up to OUT_BEATS beats per cycle back in token order. docs/architecture.md sections
// 2.2 and 3; the one-token-per-cycle version is spatten_fetcher.v, whose control, AXI and
// error semantics this module keeps.
//
// Plane geometry (as spatten_fetcher): token t is `stride_beats` bus words at
// base + t*stride_beats*W, except in a dense 6-bit plane (dense_w6, 1.5 words a token): an even
// token is words [3t/2, 3t/2+1], an odd one [(3t-1)/2, (3t+1)/2], and an odd token right after
// its even neighbour skips the word they share. beat_phase is the word index in the plane
// mod 3 (dense_w6; 0 otherwise).
//
// AR side. A group of tokens is registered in a lane buffer; each cycle a burst builder walks
// its pending lanes beat by beat (combinationally) and merges contiguous beats into the open
// INCR burst, with spatten_fetcher's rule (models/perf/bursts.py): a beat extends the open
// burst when it is the next word, the burst has fewer than MAX_BURST beats and the beat does
// not start a 4 KiB page; a burst that can no longer grow is closed at once. Closing a burst needs an emit slot: burst k of the
// fetch goes to channel k mod N_CH (round robin), so the bursts closed in one cycle go to
// distinct channels, and a slot exists while the next channel's AR queue has room. When the
// slots run out the builder stops mid-group (even mid-token: head_off) and goes on next cycle;
// a new group is taken only when the buffer empties. Every burst carries the sequence number
// of its first beat (beats are numbered in token order) and the phase of its first beat.
//
// Issue. Each channel presents its AR queue's head when the reorder buffer has room for all
// its beats (no overflow, and R beats are always accepted: no deadlock) and fewer than
// MAX_OUTSTANDING bursts are presented or in flight in total. A presented AR is held (armed)
// until ARREADY, as AXI requires.
//
// R side. Each channel keeps a FIFO of its issued bursts (first sequence number, first phase);
// a beat is written at (sequence mod ROB_BEATS) of the reorder buffer, every channel in the
// same cycle. Up to OUT_BEATS consecutive complete beats leave from the head per cycle.
//
// Errors. An SLVERR/DECERR beat makes `error` sticky (lowest channel first if several arrive
// together): no further bursts are presented (an armed one is still held to its handshake),
// queued bursts and remaining indices are dropped, R beats of issued bursts are accepted and
// discarded, no further beats leave (the beats delivered are a prefix of the stream without
// the bad one), and the fetch ends with `done`. `beats` counts every R beat accepted.
//
// Parameters: N_CH and ROB_BEATS powers of two; 2 <= MAX_BURST <= 128; MAX_BURST and
// OUT_BEATS <= ROB_BEATS; a bus word of at most 4 KiB (checked at elaboration). m_axi_ar* of a channel without ARVALID and
// beat_data/beat_phase lanes at or past beat_count are don't-care (X in 4-state simulation).
// The builder is one combinational walk over IDX_LANES*3 beats per cycle, and idx_ready
// depends on it: fine for simulation, a pipelining candidate for timing closure.
module spatten_fetcher_wide #(
    parameter integer AW              = 32,
    parameter integer DW              = 256,
    parameter integer N_CH            = 8,
    parameter integer MAX_BURST       = 16,   // power of two, MAX_BURST*DW/8 divides 4096
    parameter integer MAX_OUTSTANDING = 64,   // bursts presented or in flight, all channels
    parameter integer TOK_BITS        = 10,
    parameter integer IDX_LANES       = 8,
    parameter integer OUT_BEATS       = 8,
    parameter integer ROB_BEATS       = 256   // power of two, >= MAX_BURST and OUT_BEATS
) (
    input  wire                                 clk,
    input  wire                                 rst_n,
    // control
    input  wire                                 start,        // one-cycle pulse while idle
    input  wire [AW-1:0]                        base,         // bus-word aligned
    input  wire [1:0]                           stride_beats, // 1..3 bus words per token
    input  wire                                 dense_w6,     // dense 6-bit plane
    output wire                                 busy,
    output reg                                  done,         // one-cycle pulse at the end
    output reg  [1:0]                           error,        // 0 OKAY, 2 SLVERR, 3 DECERR
    output reg  [23:0]                          beats,        // R beats accepted
    // kept token indices: lanes 0..idx_count-1, ascending within and across groups
    input  wire                                 idx_valid,
    output wire                                 idx_ready,
    input  wire [$clog2(IDX_LANES+1)-1:0]       idx_count,
    input  wire [IDX_LANES*TOK_BITS-1:0]        idx_tokens,
    input  wire                                 idx_last,     // no group follows this one
    // AXI4 read address channels (flattened per channel)
    output wire [N_CH-1:0]                      m_axi_arvalid,
    input  wire [N_CH-1:0]                      m_axi_arready,
    output wire [N_CH*AW-1:0]                   m_axi_araddr,
    output wire [N_CH*8-1:0]                    m_axi_arlen,
    output wire [N_CH*3-1:0]                    m_axi_arsize,
    output wire [N_CH*2-1:0]                    m_axi_arburst,
    // AXI4 read data channels
    input  wire [N_CH-1:0]                      m_axi_rvalid,
    output wire [N_CH-1:0]                      m_axi_rready,
    input  wire [N_CH*DW-1:0]                   m_axi_rdata,
    input  wire [N_CH*2-1:0]                    m_axi_rresp,
    input  wire [N_CH-1:0]                      m_axi_rlast,
    // R data in token order: lanes 0..beat_count-1, all taken when beat_ready
    output wire                                 beat_valid,
    input  wire                                 beat_ready,
    output wire [$clog2(OUT_BEATS+1)-1:0]       beat_count,
    output wire [OUT_BEATS*DW-1:0]              beat_data,
    output wire [OUT_BEATS*2-1:0]               beat_phase    // word index in the plane mod 3
);
    localparam integer WB   = DW / 8;                     // bytes per bus word
    localparam integer WSH  = $clog2(WB);
    localparam integer LB   = $clog2(MAX_BURST + 1) - 1;  // burst length: LB+1 bits
    localparam integer PGB  = 12 - WSH;                   // bus words per 4 KiB page, log2
    localparam integer CHB  = (N_CH > 1) ? $clog2(N_CH) : 1;
    localparam integer OCB  = $clog2(OUT_BEATS + 1);
    localparam integer RB   = $clog2(ROB_BEATS);
    localparam integer SQB  = 24;                         // beat sequence numbers, per fetch
    localparam integer OSB  = $clog2(MAX_OUTSTANDING + N_CH + 1);
    localparam integer AQB  = 2;                          // AR queue: 4 bursts per channel
    localparam integer AQD  = 1 << AQB;
    localparam integer AQN  = 1 << (CHB + AQB);
    localparam integer IFB  = (MAX_OUTSTANDING > 2) ? $clog2(MAX_OUTSTANDING) : 1;
    localparam integer IFN  = 1 << (CHB + IFB);           // in-flight FIFO >= MAX_OUTSTANDING
    localparam integer PB   = AQB + 1;                    // AR queue pointer bits
    localparam integer FB   = IFB + 1;                    // in-flight pointer bits
    localparam [LB:0]  BLEN_MAX = MAX_BURST[LB:0];
    localparam [AW-1:0] PG_MASK = (1 << PGB) - 1;
    localparam [SQB-1:0] ROB_SPAN = ROB_BEATS[SQB-1:0];
    localparam [OSB-1:0] OS_MAX = MAX_OUTSTANDING[OSB-1:0];
    localparam [PB-1:0] AQ_FULL = AQD[PB-1:0];

    // Parameter check: an unsupported combination instantiates a module that does not exist.
    generate
        if ((N_CH & (N_CH - 1)) != 0 || (ROB_BEATS & (ROB_BEATS - 1)) != 0 || WSH > 11
            || MAX_BURST < 2 || MAX_BURST > ROB_BEATS || OUT_BEATS > ROB_BEATS
            || MAX_BURST > 128 || AW < TOK_BITS + 2) begin : g_bad_parameters
            spatten_fetcher_wide_unsupported_parameters u_bad ();
        end
    endgenerate

    // ------------------------------------------------------------------ run state
    reg                         running;
    reg [AW-1:0]                base_w;       // plane base, in bus words
    reg [1:0]                   stride_r;
    reg                         dense_r;
    reg                         prev_have;    // a token finished in this fetch (dense sharing)
    reg [TOK_BITS-1:0]          prev_tok;
    reg                         last_in;      // the group with idx_last has been taken
    reg [IDX_LANES-1:0]         grp_pend;     // lanes of the buffered group still to expand
    reg [IDX_LANES*TOK_BITS-1:0] grp_tok;
    reg [1:0]                   head_off;     // beats of the first pending lane already taken
    reg                         bur_open;     // the open (still growing) burst
    reg [AW-1:0]                bur_w;        // its first word address
    reg [LB:0]                  bur_len;
    reg [1:0]                   bur_ph;
    reg [SQB-1:0]               bur_seq;
    reg [SQB-1:0]               seq_alloc;    // next beat's sequence number
    reg [CHB-1:0]               rr;           // channel of the next burst

    // AR queues, per channel: entry {channel, pointer}
    reg [AW-1:0]                aq_w   [0:AQN-1];
    reg [LB:0]                  aq_len [0:AQN-1];
    reg [SQB-1:0]               aq_seq [0:AQN-1];
    reg [1:0]                   aq_ph  [0:AQN-1];
    reg [N_CH*PB-1:0]           aq_wr;
    reg [N_CH*PB-1:0]           aq_rd;
    reg [N_CH-1:0]              armed;        // AR presented, not yet accepted
    reg [OSB-1:0]               outstanding;  // presented or in flight, all channels

    // in-flight bursts, per channel: entry {channel, pointer}
    reg [SQB-1:0]               if_seq [0:IFN-1];
    reg [1:0]                   if_ph  [0:IFN-1];
    reg [N_CH*FB-1:0]           if_wr;
    reg [N_CH*FB-1:0]           if_rd;
    reg [N_CH*8-1:0]            r_off;        // beat of the head burst expected next
    reg [N_CH*2-1:0]            r_ph;         // its phase when not the first

    // reorder buffer
    reg [DW-1:0]                rob_data [0:ROB_BEATS-1];
    reg [1:0]                   rob_ph   [0:ROB_BEATS-1];
    reg [ROB_BEATS-1:0]         rob_vld;
    reg [SQB-1:0]               rob_head;     // sequence number of the next beat to leave

    function [1:0] inc3;
        input [1:0] p;
        inc3 = (p == 2'd2) ? 2'd0 : p + 2'd1;
    endfunction

    // ------------------------------------------------------------------ per-channel views
    // (array reads as continuous assignments, flat vectors for the combinational blocks)
    wire [N_CH-1:0]       aq_room;        // the AR queue can take a burst
    wire [N_CH-1:0]       aq_nonempty;
    wire [N_CH*AW-1:0]    aqh_w;          // AR queue heads
    wire [N_CH*(LB+1)-1:0] aqh_len;
    wire [N_CH*SQB-1:0]   aqh_seq;
    wire [N_CH*2-1:0]     aqh_ph;
    wire [N_CH-1:0]       r_busy;         // bursts in flight on the channel
    wire [N_CH*SQB-1:0]   r_seq;          // sequence number of the channel's next R beat
    wire [N_CH*2-1:0]     r_phase;        // and its phase
    genvar c;
    generate
        for (c = 0; c < N_CH; c = c + 1) begin : g_view
            wire [CHB-1:0]     ch = c;
            wire [PB-1:0]      wr = aq_wr[c*PB +: PB];
            wire [PB-1:0]      rd = aq_rd[c*PB +: PB];
            wire [CHB+AQB-1:0] ah = {ch, rd[AQB-1:0]};
            wire [FB-1:0]      fr = if_rd[c*FB +: FB];
            wire [CHB+IFB-1:0] fh = {ch, fr[IFB-1:0]};
            wire [7:0]         off = r_off[c*8 +: 8];
            assign aq_room[c]              = (wr - rd) != AQ_FULL;
            assign aq_nonempty[c]          = wr != rd;
            assign aqh_w[c*AW +: AW]       = aq_w[ah];
            assign aqh_len[c*(LB+1) +: LB+1] = aq_len[ah];
            assign aqh_seq[c*SQB +: SQB]   = aq_seq[ah];
            assign aqh_ph[c*2 +: 2]        = aq_ph[ah];
            assign r_busy[c]               = if_wr[c*FB +: FB] != fr;
            assign r_seq[c*SQB +: SQB]     = if_seq[fh] + {{(SQB-8){1'b0}}, off};
            assign r_phase[c*2 +: 2]       = (off == 8'd0) ? if_ph[fh] : r_ph[c*2 +: 2];
        end
    endgenerate

    // ------------------------------------------------------------------ emit budget
    // Slot k of this cycle goes to channel (rr + k) mod N_CH (N_CH a power of two); slots are
    // usable while those channels' AR queues have room (registered: no path from ARREADY).
    reg [CHB:0] budget;
    reg         budget_blocked;
    reg [CHB-1:0] bch;
    integer     bk;
    always @(*) begin
        budget = {(CHB+1){1'b0}};
        budget_blocked = 1'b0;
        bch = rr;
        for (bk = 0; bk < N_CH; bk = bk + 1) begin
            if (!budget_blocked && aq_room[bch]) budget = budget + 1'b1;
            else budget_blocked = 1'b1;
            bch = (N_CH == 1) ? {CHB{1'b0}} : bch + 1'b1;
        end
    end

    // ------------------------------------------------------------------ burst builder
    reg [IDX_LANES-1:0]   b_pend;
    reg [1:0]             b_off;
    reg                   b_prev_have;
    reg [TOK_BITS-1:0]    b_prev_tok;
    reg                   b_open;
    reg [AW-1:0]          b_w;
    reg [LB:0]            b_len;
    reg [1:0]             b_ph;
    reg [SQB-1:0]         b_bseq;
    reg [SQB-1:0]         b_seq;
    reg [CHB:0]           n_emit;
    reg [N_CH*AW-1:0]     em_w;
    reg [N_CH*(LB+1)-1:0] em_len;
    reg [N_CH*SQB-1:0]    em_seq;
    reg [N_CH*2-1:0]      em_ph;
    // per-token scratch
    reg                   stop, head_lane, shared, contig;
    reg [TOK_BITS-1:0]    tok;
    reg [AW-1:0]          tok_w, first, word;
    reg [AW-1:0]          b_end;        // the word after the open burst
    reg [1:0]             nb, ph, bi;
    integer               lj, bb;
    always @(*) begin
        b_pend = grp_pend;
        b_off = head_off;
        b_prev_have = prev_have;
        b_prev_tok = prev_tok;
        b_open = bur_open;
        b_w = bur_w;
        b_len = bur_len;
        b_ph = bur_ph;
        b_bseq = bur_seq;
        b_seq = seq_alloc;
        n_emit = {(CHB+1){1'b0}};
        em_w = {N_CH*AW{1'b0}};
        em_len = {N_CH*(LB+1){1'b0}};
        em_seq = {N_CH*SQB{1'b0}};
        em_ph = {N_CH*2{1'b0}};
        stop = 1'b0;
        head_lane = 1'b1;
        shared = 1'b0;
        contig = 1'b0;
        tok = {TOK_BITS{1'b0}};
        tok_w = {AW{1'b0}};
        first = {AW{1'b0}};
        word = {AW{1'b0}};
        b_end = {AW{1'b0}};
        nb = 2'd1;
        ph = 2'd0;
        bi = 2'd0;
        if (error != 2'd0) begin
            // after an error nothing more is built: lanes and the open burst are dropped
            b_pend = {IDX_LANES{1'b0}};
            b_off = 2'd0;
            b_open = 1'b0;
        end else if (running) begin
            for (lj = 0; lj < IDX_LANES; lj = lj + 1) begin
                if (grp_pend[lj] && !stop) begin
                    tok = grp_tok[lj*TOK_BITS +: TOK_BITS];
                    tok_w = {{(AW-TOK_BITS){1'b0}}, tok};
                    shared = dense_r && b_prev_have && tok[0] && (tok == b_prev_tok + 1'b1);
                    first = dense_r ? (tok_w + (tok_w >> 1) + {{(AW-1){1'b0}}, shared})
                                    : (tok_w * {{(AW-2){1'b0}}, stride_r});
                    nb = !dense_r ? stride_r : shared ? 2'd1 : 2'd2;
                    ph = !dense_r ? 2'd0 : shared ? 2'd2 : {1'b0, tok[0]};
                    for (bb = 0; bb < 3; bb = bb + 1) begin
                        bi = bb[1:0];
                        if (!stop && bi < nb && (!head_lane || bi >= head_off)) begin
                            word = base_w + first + {{(AW-2){1'b0}}, bi};
                            contig = b_open && (word == b_w + {{(AW-LB-1){1'b0}}, b_len})
                                     && (b_len != BLEN_MAX) && (word[PGB-1:0] != {PGB{1'b0}});
                            if (!contig && b_open && n_emit == budget) begin
                                stop = 1'b1;   // no slot to close the open burst: next cycle
                                b_off = bi;
                            end else begin
                                if (!contig) begin
                                    if (b_open) begin
                                        em_w[n_emit*AW +: AW] = b_w;
                                        em_len[n_emit*(LB+1) +: LB+1] = b_len;
                                        em_seq[n_emit*SQB +: SQB] = b_bseq;
                                        em_ph[n_emit*2 +: 2] = b_ph;
                                        n_emit = n_emit + 1'b1;
                                    end
                                    b_open = 1'b1;
                                    b_w = word;
                                    b_len = {{LB{1'b0}}, 1'b1};
                                    b_ph = ph;
                                    b_bseq = b_seq;
                                end else begin
                                    b_len = b_len + 1'b1;
                                end
                                b_seq = b_seq + 1'b1;
                                if (bi == nb - 2'd1) begin
                                    b_pend[lj] = 1'b0;
                                    b_off = 2'd0;
                                    b_prev_have = 1'b1;
                                    b_prev_tok = tok;
                                end
                            end
                        end
                        if (bi < nb && dense_r) ph = inc3(ph);  // phase of the next beat
                    end
                    head_lane = 1'b0;
                end
            end
            // A full burst, one ending at a page end, or the fetch's last beats need not wait
            // for a next beat.
            b_end = b_w + {{(AW-LB-1){1'b0}}, b_len};
            if (b_open && n_emit < budget && ((b_len == BLEN_MAX) || (b_end & PG_MASK) == 0
                                               || (last_in && b_pend == {IDX_LANES{1'b0}}))) begin
                em_w[n_emit*AW +: AW] = b_w;
                em_len[n_emit*(LB+1) +: LB+1] = b_len;
                em_seq[n_emit*SQB +: SQB] = b_bseq;
                em_ph[n_emit*2 +: 2] = b_ph;
                n_emit = n_emit + 1'b1;
                b_open = 1'b0;
            end
        end
    end

    // Slot k of the builder goes to channel (rr + k) mod N_CH.
    reg [N_CH-1:0]        push;
    reg [N_CH*AW-1:0]     push_w;
    reg [N_CH*(LB+1)-1:0] push_len;
    reg [N_CH*SQB-1:0]    push_seq;
    reg [N_CH*2-1:0]      push_ph;
    reg [CHB-1:0]         slot;
    reg [CHB-1:0]         pch;
    integer               pc;
    always @(*) begin
        push_w = {N_CH*AW{1'b0}};
        push_len = {N_CH*(LB+1){1'b0}};
        push_seq = {N_CH*SQB{1'b0}};
        push_ph = {N_CH*2{1'b0}};
        push = {N_CH{1'b0}};
        slot = {CHB{1'b0}};
        pch = {CHB{1'b0}};
        for (pc = 0; pc < N_CH; pc = pc + 1) begin
            slot = (N_CH == 1) ? {CHB{1'b0}} : pch - rr;
            push[pc] = {1'b0, slot} < n_emit;
            push_w[pc*AW +: AW] = em_w[slot*AW +: AW];
            push_len[pc*(LB+1) +: LB+1] = em_len[slot*(LB+1) +: LB+1];
            push_seq[pc*SQB +: SQB] = em_seq[slot*SQB +: SQB];
            push_ph[pc*2 +: 2] = em_ph[slot*2 +: 2];
            pch = pch + 1'b1;
        end
    end

    // ------------------------------------------------------------------ AR issue
    // A channel presents its head burst when the ROB has room for all of it and the total of
    // presented + in-flight bursts stays within MAX_OUTSTANDING (channels in index order).
    reg [N_CH-1:0] can_arm;
    reg [N_CH-1:0] ar_drop;       // queued burst discarded after an error
    reg [OSB-1:0]  os_arms;
    integer        ac;
    always @(*) begin
        os_arms = outstanding;
        for (ac = 0; ac < N_CH; ac = ac + 1) begin
            can_arm[ac] = running && !armed[ac] && aq_nonempty[ac] && error == 2'd0
                && (aqh_seq[ac*SQB +: SQB] + {{(SQB-LB-1){1'b0}}, aqh_len[ac*(LB+1) +: LB+1]}
                    - rob_head) <= ROB_SPAN
                && os_arms < OS_MAX;
            if (can_arm[ac]) os_arms = os_arms + 1'b1;
            ar_drop[ac] = error != 2'd0 && !armed[ac] && aq_nonempty[ac];
        end
    end
    wire [N_CH-1:0] arvalid = armed | can_arm;
    wire [N_CH-1:0] ar_fire = arvalid & m_axi_arready;
    wire [N_CH-1:0] r_fire  = m_axi_rvalid & r_busy;

    generate
        for (c = 0; c < N_CH; c = c + 1) begin : g_ch
            assign m_axi_arvalid[c]         = arvalid[c];
            assign m_axi_araddr[c*AW +: AW] = aqh_w[c*AW +: AW] << WSH;
            assign m_axi_arlen[c*8 +: 8]    = {{(7-LB){1'b0}}, aqh_len[c*(LB+1) +: LB+1]} - 8'd1;
            assign m_axi_arsize[c*3 +: 3]   = WSH[2:0];
            assign m_axi_arburst[c*2 +: 2]  = 2'b01;  // INCR
            assign m_axi_rready[c]          = r_busy[c];
        end
    endgenerate

    // ------------------------------------------------------------------ ROB read side
    wire [OUT_BEATS*DW-1:0] out_data;
    wire [OUT_BEATS*2-1:0]  out_ph;
    wire [OUT_BEATS-1:0]    out_vld;
    generate
        for (c = 0; c < OUT_BEATS; c = c + 1) begin : g_out
            wire [RB-1:0] oidx = rob_head[RB-1:0] + c[RB-1:0];
            assign out_data[c*DW +: DW] = rob_data[oidx];
            assign out_ph[c*2 +: 2]     = rob_ph[oidx];
            assign out_vld[c]           = rob_vld[oidx];
        end
    endgenerate
    reg [OCB-1:0] out_cnt;        // complete beats in a row from the head
    reg           out_run;
    integer       oi;
    always @(*) begin
        out_cnt = {OCB{1'b0}};
        out_run = (error == 2'd0);
        for (oi = 0; oi < OUT_BEATS; oi = oi + 1) begin
            if (out_run && out_vld[oi]) out_cnt = out_cnt + 1'b1;
            else out_run = 1'b0;
        end
    end
    assign beat_valid = out_cnt != {OCB{1'b0}};
    assign beat_count = out_cnt;
`ifdef FETCHER_WIDE_MUTANT_SWAP
    // checker self-test: lanes 0 and 1 swapped
    generate
        for (c = 0; c < OUT_BEATS; c = c + 1) begin : g_mutant
            assign beat_data[c*DW +: DW] = (out_cnt > 1) ? out_data[(c < 2 ? 1 - c : c)*DW +: DW]
                                                         : out_data[c*DW +: DW];
        end
    endgenerate
`else
    assign beat_data = out_data;
`endif
    assign beat_phase = out_ph;
    wire out_fire = beat_valid && beat_ready;

    assign busy = running;
    assign idx_ready = running && !last_in && (b_pend == {IDX_LANES{1'b0}});
    wire idx_take = idx_valid && idx_ready;

    // ------------------------------------------------------------------ counters
    reg [IDX_LANES-1:0] lane_mask;
    reg [OSB-1:0]       os_next;
    reg [23:0]          beats_next;
    reg                 err_seen;
    reg [1:0]           err_next;
    integer             si;
    always @(*) begin
        os_next = outstanding;
        beats_next = beats;
        err_seen = 1'b0;
        err_next = error;
        for (si = 0; si < N_CH; si = si + 1) begin
            if (can_arm[si]) os_next = os_next + 1'b1;
            if (r_fire[si]) begin
                beats_next = beats_next + 24'd1;
                if (m_axi_rresp[si*2 + 1] && error == 2'd0 && !err_seen) begin
                    err_next = m_axi_rresp[si*2 +: 2];
                    err_seen = 1'b1;
                end
                if (m_axi_rlast[si]) os_next = os_next - 1'b1;
            end
        end
        lane_mask = {IDX_LANES{1'b0}};
        for (si = 0; si < IDX_LANES; si = si + 1)
            if (si < idx_count) lane_mask[si] = 1'b1;
    end
    wire all_quiet = last_in && grp_pend == {IDX_LANES{1'b0}} && !bur_open
                     && aq_nonempty == {N_CH{1'b0}} && armed == {N_CH{1'b0}}
                     && outstanding == {OSB{1'b0}} && (error != 2'd0 || rob_head == seq_alloc);

    // ------------------------------------------------------------------ state update
    integer cj;
    always @(posedge clk) begin
        if (!rst_n) begin
            running <= 1'b0;
            base_w <= {AW{1'b0}};
            stride_r <= 2'd1;
            dense_r <= 1'b0;
            prev_have <= 1'b0;
            prev_tok <= {TOK_BITS{1'b0}};
            last_in <= 1'b0;
            grp_pend <= {IDX_LANES{1'b0}};
            grp_tok <= {IDX_LANES*TOK_BITS{1'b0}};
            head_off <= 2'd0;
            bur_open <= 1'b0;
            bur_w <= {AW{1'b0}};
            bur_len <= {(LB+1){1'b0}};
            bur_ph <= 2'd0;
            bur_seq <= {SQB{1'b0}};
            seq_alloc <= {SQB{1'b0}};
            rr <= {CHB{1'b0}};
            aq_wr <= {N_CH*PB{1'b0}};
            aq_rd <= {N_CH*PB{1'b0}};
            armed <= {N_CH{1'b0}};
            outstanding <= {OSB{1'b0}};
            if_wr <= {N_CH*FB{1'b0}};
            if_rd <= {N_CH*FB{1'b0}};
            r_off <= {N_CH*8{1'b0}};
            r_ph <= {N_CH*2{1'b0}};
            rob_vld <= {ROB_BEATS{1'b0}};
            rob_head <= {SQB{1'b0}};
            done <= 1'b0;
            error <= 2'd0;
            beats <= 24'd0;
        end else begin
            done <= 1'b0;
            if (start && !running) begin
                running <= 1'b1;
                base_w <= base >> WSH;
                stride_r <= stride_beats;
                dense_r <= dense_w6;
                prev_have <= 1'b0;
                last_in <= 1'b0;
                grp_pend <= {IDX_LANES{1'b0}};
                head_off <= 2'd0;
                bur_open <= 1'b0;
                seq_alloc <= {SQB{1'b0}};
                rr <= {CHB{1'b0}};
                rob_vld <= {ROB_BEATS{1'b0}};
                rob_head <= {SQB{1'b0}};
                error <= 2'd0;
                beats <= 24'd0;
            end else if (running) begin
                // builder
                grp_pend <= b_pend;
                head_off <= b_off;
                prev_have <= b_prev_have;
                prev_tok <= b_prev_tok;
                bur_open <= b_open;
                bur_w <= b_w;
                bur_len <= b_len;
                bur_ph <= b_ph;
                bur_seq <= b_bseq;
                seq_alloc <= b_seq;
                rr <= (N_CH == 1) ? {CHB{1'b0}} : rr + n_emit[CHB-1:0];
                if (idx_take) begin
                    grp_tok <= idx_tokens;
                    grp_pend <= (error == 2'd0) ? lane_mask : {IDX_LANES{1'b0}};
                    head_off <= 2'd0;
                    if (idx_last) last_in <= 1'b1;
                end
                for (cj = 0; cj < N_CH; cj = cj + 1) begin
                    // AR queue push (builder) and pop (issued, or dropped after an error)
                    if (push[cj]) begin
                        aq_w[{cj[CHB-1:0], aq_wr[cj*PB +: AQB]}] <= push_w[cj*AW +: AW];
                        aq_len[{cj[CHB-1:0], aq_wr[cj*PB +: AQB]}] <= push_len[cj*(LB+1) +: LB+1];
                        aq_seq[{cj[CHB-1:0], aq_wr[cj*PB +: AQB]}] <= push_seq[cj*SQB +: SQB];
                        aq_ph[{cj[CHB-1:0], aq_wr[cj*PB +: AQB]}] <= push_ph[cj*2 +: 2];
                        aq_wr[cj*PB +: PB] <= aq_wr[cj*PB +: PB] + 1'b1;
                    end
                    if (ar_fire[cj] || ar_drop[cj]) aq_rd[cj*PB +: PB] <= aq_rd[cj*PB +: PB] + 1'b1;
                    if (ar_fire[cj]) begin
                        if_seq[{cj[CHB-1:0], if_wr[cj*FB +: IFB]}] <= aqh_seq[cj*SQB +: SQB];
                        if_ph[{cj[CHB-1:0], if_wr[cj*FB +: IFB]}] <= aqh_ph[cj*2 +: 2];
                        if_wr[cj*FB +: FB] <= if_wr[cj*FB +: FB] + 1'b1;
                    end
                end
                armed <= arvalid & ~m_axi_arready;
                // ROB: beats leaving, then beats arriving (never the same entries)
                if (out_fire) begin
                    for (cj = 0; cj < OUT_BEATS; cj = cj + 1)
                        if (out_vld[cj] && cj < out_cnt)
                            rob_vld[rob_head[RB-1:0] + cj[RB-1:0]] <= 1'b0;
                    rob_head <= rob_head + {{(SQB-OCB){1'b0}}, out_cnt};
                end
                for (cj = 0; cj < N_CH; cj = cj + 1) begin
                    if (r_fire[cj]) begin
                        if (!m_axi_rresp[cj*2 + 1] && error == 2'd0) begin
                            rob_data[r_seq[cj*SQB +: RB]] <= m_axi_rdata[cj*DW +: DW];
                            rob_ph[r_seq[cj*SQB +: RB]] <= r_phase[cj*2 +: 2];
                            rob_vld[r_seq[cj*SQB +: RB]] <= 1'b1;
                        end
                        r_ph[cj*2 +: 2] <= dense_r ? inc3(r_phase[cj*2 +: 2]) : 2'd0;
                        if (m_axi_rlast[cj]) begin
                            r_off[cj*8 +: 8] <= 8'd0;
                            if_rd[cj*FB +: FB] <= if_rd[cj*FB +: FB] + 1'b1;
                        end else begin
                            r_off[cj*8 +: 8] <= r_off[cj*8 +: 8] + 8'd1;
                        end
                    end
                end
                outstanding <= os_next;
                beats <= beats_next;
                error <= err_next;
                if (all_quiet) begin
                    running <= 1'b0;
                    done <= 1'b1;
                end
            end
        end
    end
endmodule
