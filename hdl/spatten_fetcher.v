// Key/value fetcher: kept token indices in, AXI4 read bursts out, R data beats back in order.
// docs/architecture.md sections 2.2 and 3.
//
// A fetch is started with `start` (plane base address, the plane's stride in bus words and
// dense_w6). Token indices then arrive in ascending order on idx_* (idx_last on the final one).
// Each token is `stride_beats` bus words at base + token*stride_beats*W, except in a dense
// 6-bit plane (dense_w6 = 1, D*6 = 1.5 bus words: token t's 48 B at byte 48t, section 3): an
// even token is words [3t/2, 3t/2+1], an odd one [(3t-1)/2, (3t+1)/2]; when an odd token
// follows its even neighbour the word they share is not read again (two tokens = 3 beats).
// Every beat carries its word's phase in the plane, (word index) mod 3 on beat_phase (dense
// 6-bit planes only; 0 otherwise), so the unpacker can find token boundaries inside words: the
// phase of a burst's first beat travels with the burst in the channel-order FIFO. Beat
// addresses are generated one per cycle and merged into INCR bursts while they are
// contiguous, shorter than MAX_BURST and not crossing a 4 KiB boundary; so runs of kept tokens
// become long bursts.
// Bursts are spread round-robin over N_CH read channels with up to MAX_OUTSTANDING bursts in
// flight in total; a FIFO of channel numbers in issue order lets the R side consume the
// channels in that order, so beats leave on beat_* in token order whatever the channel
// latencies. An SLVERR/DECERR beat makes `error` sticky: no further bursts are issued, the
// remaining indices are consumed and dropped, and the R beats of bursts already issued are
// accepted and discarded, so the fetch always ends with `done`.
module spatten_fetcher #(
    parameter integer AW              = 32,
    parameter integer DW              = 256,
    parameter integer N_CH            = 1,
    parameter integer MAX_BURST       = 16,
    parameter integer MAX_OUTSTANDING = 8,
    parameter integer TOK_BITS        = 10
) (
    input  wire                 clk,
    input  wire                 rst_n,
    // control
    input  wire                 start,          // one-cycle pulse while idle
    input  wire [AW-1:0]        base,
    input  wire [1:0]           stride_beats,   // 1..3 bus words per token
    input  wire                 dense_w6,       // dense 6-bit plane (stride_beats = 2)
    output wire                 busy,
    output reg                  done,           // one-cycle pulse: every issued burst returned
    output reg  [1:0]           error,          // 0 OKAY, 2 SLVERR, 3 DECERR (first error seen)
    output reg  [23:0]          beats,          // R beats accepted during this fetch
    // kept token indices, ascending
    input  wire                 idx_valid,
    output wire                 idx_ready,
    input  wire [TOK_BITS-1:0]  idx_token,
    input  wire                 idx_last,
    // AXI4 read address channels (flattened per channel)
    output wire [N_CH-1:0]      m_axi_arvalid,
    input  wire [N_CH-1:0]      m_axi_arready,
    output wire [N_CH*AW-1:0]   m_axi_araddr,
    output wire [N_CH*8-1:0]    m_axi_arlen,
    output wire [N_CH*3-1:0]    m_axi_arsize,
    output wire [N_CH*2-1:0]    m_axi_arburst,
    // AXI4 read data channels
    input  wire [N_CH-1:0]      m_axi_rvalid,
    output wire [N_CH-1:0]      m_axi_rready,
    input  wire [N_CH*DW-1:0]   m_axi_rdata,
    input  wire [N_CH*2-1:0]    m_axi_rresp,
    input  wire [N_CH-1:0]      m_axi_rlast,
    // R data in token order
    output wire                 beat_valid,
    input  wire                 beat_ready,
    output wire [DW-1:0]        beat_data,
    output wire [1:0]           beat_phase      // word index in the plane mod 3 (dense_w6)
);
    localparam integer WB     = DW / 8;            // bytes per bus word
    localparam integer WSH    = $clog2(WB);        // log2(bytes per bus word)
    localparam integer CHB    = (N_CH > 1) ? $clog2(N_CH) : 1;
    localparam integer OSB    = $clog2(MAX_OUTSTANDING + 1);
    localparam integer LENB   = $clog2(MAX_BURST + 1);
    localparam integer QDEPTH = 8;                 // channel-order FIFO >= MAX_OUTSTANDING
    localparam integer QB     = $clog2(QDEPTH);
    localparam integer LAST_CH_I = N_CH - 1;
    localparam [CHB-1:0] LAST_CH = LAST_CH_I[CHB-1:0];

    // ------------------------------------------------------------------ run state
    reg           running;      // between start and done
    reg [AW-1:0]  base_r;
    reg [1:0]     stride_r;
    reg           dense_r;
    reg           prev_have;    // a token was taken in this fetch (dense_w6 word sharing)
    reg [TOK_BITS-1:0] prev_tok;
    reg           idx_done;     // the last index has been turned into beats (or dropped)

    // ------------------------------------------------------------------ beat address generator
    reg           tok_have;     // a token is being expanded into beats
    reg [AW-1:0]  tok_addr;     // address of the token's next beat
    reg [1:0]     tok_beat;     // beats of the token already generated
    reg [1:0]     tok_nbeats;   // beats of this token (1 for an odd token sharing a word)
    reg [1:0]     tok_phase;    // phase (word mod 3) of the token's next beat (dense_w6)
    // Token intake: first word (relative to the base) and whether it is the previous token's
    // last word (dense 6-bit plane, odd token right after its even neighbour).
    wire [AW-1:0] idx_w       = {{(AW-TOK_BITS){1'b0}}, idx_token};
    wire          idx_shared  = dense_r && prev_have && idx_token[0]
                                && (idx_token == prev_tok + 1'b1);
    wire [AW-1:0] idx_word    = dense_r ? (idx_w + (idx_w >> 1) + {{(AW-1){1'b0}}, idx_shared})
                                        : (idx_w * stride_r);
    wire [1:0]    idx_phase   = !dense_r ? 2'd0 : idx_shared ? 2'd2 : {1'b0, idx_token[0]};
    wire [1:0]    tok_phase_n = (tok_phase == 2'd2) ? 2'd0 : tok_phase + 2'd1;

    // ------------------------------------------------------------------ open burst
    reg           bur_open;
    reg [AW-1:0]  bur_addr;
    reg [LENB-1:0] bur_len;     // beats in the open burst
    reg [1:0]     bur_phase;    // phase of the open burst's first beat
    wire [AW-1:0] bur_next = bur_addr + ({{(AW-LENB){1'b0}}, bur_len} << WSH);

    // ------------------------------------------------------------------ pending AR (one slot)
    reg           ar_pend;
    reg [AW-1:0]  ar_addr;
    reg [7:0]     ar_len;
    reg [1:0]     ar_phase;
    reg [CHB-1:0] ar_ch;        // channel the next burst goes to (round robin)
    reg [OSB-1:0] outstanding;

    // Channel order FIFO: which channel each issued burst went to.
    reg [CHB-1:0] chq [0:QDEPTH-1];
    reg [1:0]     chq_ph [0:QDEPTH-1];  // phase of each burst's first beat
    reg [QB:0]    chq_wr, chq_rd;
    wire          chq_empty = (chq_wr == chq_rd);
    wire [CHB-1:0] r_ch = chq[chq_rd[QB-1:0]];
    reg           r_first;      // the next R beat is the first of its burst
    reg [1:0]     r_phase;      // phase of the next R beat when not the first
    wire [1:0]    r_phase_cur = r_first ? chq_ph[chq_rd[QB-1:0]] : r_phase;

    // A beat may be added when the token generator has one and the burst logic can take it.
    wire gen_valid = tok_have && error == 2'd0;
    wire beat_contig = bur_open && (tok_addr == bur_next) && (bur_len < MAX_BURST[LENB-1:0])
                       && (tok_addr[11:0] != 12'd0);
    // Closing a burst needs the single AR slot to be free.
    wire close_needed = gen_valid && bur_open && !beat_contig;
    wire gen_take = gen_valid && (!close_needed || !ar_pend);
    wire gen_token_end = gen_take && (tok_beat + 2'd1 == tok_nbeats);
    wire flush = running && idx_done && !tok_have && bur_open && !ar_pend;

    assign idx_ready = running && !idx_done && (!tok_have || gen_token_end || error != 2'd0);
    wire idx_take = idx_valid && idx_ready;

    // AR handshake on the chosen channel.
    wire ar_fire = ar_pend && m_axi_arready[ar_ch] && (outstanding < MAX_OUTSTANDING[OSB-1:0]);

    // R side: only the channel at the head of the order FIFO is listened to.
    wire          r_valid_h = !chq_empty && m_axi_rvalid[r_ch];
    wire [DW-1:0] r_data_h  = m_axi_rdata[r_ch*DW +: DW];
    wire [1:0]    r_resp_h  = m_axi_rresp[r_ch*2 +: 2];
    wire          r_last_h  = m_axi_rlast[r_ch];
    wire          r_bad     = r_resp_h[1];
    // Good beats are forwarded; after an error every beat is accepted and dropped.
    wire          r_drop    = (error != 2'd0) || r_bad;
    wire          r_fire    = r_valid_h && (r_drop || beat_ready);

    assign beat_valid = r_valid_h && !r_drop;
    assign beat_data  = r_data_h;
    assign beat_phase = r_phase_cur;
    assign busy       = running;

    genvar c;
    generate
        for (c = 0; c < N_CH; c = c + 1) begin : g_ch
            assign m_axi_arvalid[c]           = ar_pend && (ar_ch == c)
                                                && (outstanding < MAX_OUTSTANDING[OSB-1:0]);
            assign m_axi_araddr[c*AW +: AW]   = ar_addr;
            assign m_axi_arlen[c*8 +: 8]      = ar_len;
            assign m_axi_arsize[c*3 +: 3]     = WSH[2:0];
            assign m_axi_arburst[c*2 +: 2]    = 2'b01;  // INCR
            assign m_axi_rready[c]            = !chq_empty && (r_ch == c) && (r_drop || beat_ready);
        end
    endgenerate

    wire all_quiet = idx_done && !tok_have && !bur_open && !ar_pend && outstanding == 0;

    always @(posedge clk) begin
        if (!rst_n) begin
            running <= 1'b0;
            base_r <= {AW{1'b0}};
            stride_r <= 2'd1;
            dense_r <= 1'b0;
            prev_have <= 1'b0;
            prev_tok <= {TOK_BITS{1'b0}};
            idx_done <= 1'b0;
            tok_have <= 1'b0;
            tok_addr <= {AW{1'b0}};
            tok_beat <= 2'd0;
            tok_nbeats <= 2'd1;
            tok_phase <= 2'd0;
            bur_open <= 1'b0;
            bur_addr <= {AW{1'b0}};
            bur_len <= {LENB{1'b0}};
            bur_phase <= 2'd0;
            ar_pend <= 1'b0;
            ar_addr <= {AW{1'b0}};
            ar_len <= 8'd0;
            ar_phase <= 2'd0;
            r_first <= 1'b1;
            r_phase <= 2'd0;
            ar_ch <= {CHB{1'b0}};
            outstanding <= {OSB{1'b0}};
            chq_wr <= {(QB+1){1'b0}};
            chq_rd <= {(QB+1){1'b0}};
            done <= 1'b0;
            error <= 2'd0;
            beats <= 24'd0;
        end else begin
            done <= 1'b0;
            if (start && !running) begin
                running <= 1'b1;
                base_r <= base;
                stride_r <= stride_beats;
                dense_r <= dense_w6;
                prev_have <= 1'b0;
                idx_done <= 1'b0;
                error <= 2'd0;
                beats <= 24'd0;
                ar_ch <= {CHB{1'b0}};
            end

            // Index intake: latch the token's first beat address (dropped after an error).
            if (idx_take) begin
                tok_have <= (error == 2'd0);
                tok_addr <= base_r + (idx_word << WSH);
                tok_beat <= 2'd0;
                tok_nbeats <= idx_shared ? 2'd1 : stride_r;
                tok_phase <= idx_phase;
                prev_have <= 1'b1;
                prev_tok <= idx_token;
                if (idx_last) idx_done <= 1'b1;
            end else if (gen_token_end || (tok_have && error != 2'd0)) begin
                tok_have <= 1'b0;
            end
            if (gen_take && !gen_token_end) begin
                tok_addr <= tok_addr + WB[AW-1:0];
                tok_beat <= tok_beat + 2'd1;
                tok_phase <= tok_phase_n;
            end

            // Burst building: extend, or close the open burst into the AR slot and open anew.
            if (gen_take) begin
                if (beat_contig) begin
                    bur_len <= bur_len + 1'b1;
                end else begin
                    bur_open <= 1'b1;
                    bur_addr <= tok_addr;
                    bur_len <= {{(LENB-1){1'b0}}, 1'b1};
                    bur_phase <= tok_phase;
                end
            end else if (flush || (bur_open && error != 2'd0)) begin
                bur_open <= 1'b0;
            end

            if ((gen_take && bur_open && !beat_contig) || (flush && error == 2'd0)) begin
                ar_pend <= 1'b1;
                ar_addr <= bur_addr;
                ar_len <= {{(8-LENB){1'b0}}, bur_len} - 8'd1;
                ar_phase <= bur_phase;
            end else if (ar_fire) begin
                ar_pend <= 1'b0;
            end
            if (ar_pend && error != 2'd0 && !ar_fire) begin
                ar_pend <= 1'b0;  // an unissued burst is abandoned after an error
            end

            if (ar_fire) begin
                chq[chq_wr[QB-1:0]] <= ar_ch;
                chq_ph[chq_wr[QB-1:0]] <= ar_phase;
                chq_wr <= chq_wr + 1'b1;
                ar_ch <= (ar_ch == LAST_CH) ? {CHB{1'b0}} : ar_ch + 1'b1;
            end

            if (r_fire) begin
                beats <= beats + 24'd1;
                r_first <= r_last_h;
                r_phase <= (r_phase_cur == 2'd2) ? 2'd0 : r_phase_cur + 2'd1;
                if (r_bad && error == 2'd0) error <= r_resp_h;
                if (r_last_h) chq_rd <= chq_rd + 1'b1;
            end
            case ({ar_fire, r_fire && r_last_h})
                2'b10: outstanding <= outstanding + 1'b1;
                2'b01: outstanding <= outstanding - 1'b1;
                default: ;
            endcase

            if (running && all_quiet && !(start)) begin
                running <= 1'b0;
                done <= 1'b1;
            end
        end
    end
endmodule
