// Wide plane unpacker: up to IN_BEATS AXI R-data beats of one K/V bit plane per cycle -> up to
// KPC tokens (D codes each) per cycle, in aligned output beats (docs/architecture.md,
// section 3; reference models/formats.py: pack_plane / unpack_plane). The code semantics are
// those of hdl/spatten_plane_unpack.v (one beat, one token per cycle), which stays as it is.
//
// Geometry: AXI_DW = 4*D (a 4-bit token is one bus word; 8-bit two, 12-bit three, a dense
// 6-bit token 1.5). KPC and IN_BEATS are powers of two, 1..8.
//
// Input group: in_count beats (0..IN_BEATS) on lanes 0..in_count-1 of in_data (lane j on
// in_data[j*AXI_DW +: AXI_DW], its word phase on in_phase[2j +: 2]), lane 0 first in stream
// order; the whole group is taken when in_valid && in_ready (lanes >= in_count are ignored).
// A beat completes a token:
//   w = 4, 8, 12: when it is the 1st / 2nd / 3rd beat of its token (a beat counter mod 1/2/3
//                 that runs across groups: tokens straddle groups);
//   w = 6 (dense): when (phase == 1 and the previous beat of the stream had phase 0: an even
//                 token, phase-0 word + low half of this one) or phase == 2 (an odd token:
//                 high half of the previous, phase-1, word + this one). The previous beat
//                 carries across groups (as in hdl/spatten_plane_unpack.v).
// Every token's bits therefore lie in the window of the completing beat and the two before it:
// the block keeps the stream's last two beats (hist) and sees ext = {group, hist}; the token
// string is the window shifted by a constant per width (w12: 0, w8 and even w6: one word,
// odd w6: 1.5 words, w4: two words).
//
// Output: out_codes lane l (bits [l*D*12 +: D*12]) holds one token, element d in lane bits
// [12d+11 : 12d], sign-extended (cfg_signed = 1) or zero-extended (0) to 12 bits. Beats are
// ALIGNED: every beat holds KPC tokens except the stream's last, which holds the rest
// (out_count = 1..KPC, out_last = 1) once cfg_total tokens have come; token i of the stream
// is in beat i/KPC, lane i%KPC. Lanes >= out_count of the last beat are zero.
//
// Structure: a completing lane j is written at entry wr_ptr + (completing lanes before j) of a
// token store (a circular buffer of SIZE = pow2 >= KPC + 2*IN_BEATS - 1 entries: 32 at 8/8, 8
// at IN_BEATS 2 / KPC 4), so the k-th completing lane of a group lands at wr_ptr + k with no
// compaction network; its token is decoded in that clocked write (decode_token). An output
// beat is read from the read pointer (a multiple of KPC until the stream's last beat).
// out_valid/out_count/out_codes/out_last come from registers and cfg_total only. in_ready =
// (free entries >= IN_BEATS) from the entry count register only (no combinational path from
// out_ready): a group completes at most IN_BEATS tokens.
// Simulation cost: the decode is no combinational logic (the simulators run it once per taken
// token, not on every input change), and its loops stay loops in Verilator's C++ (unrolled,
// they were IN_BEATS * D copies of the per-element code: several MB of C++ at D = 64).
// Throughput: with out_ready high and IN_BEATS <= KPC, IN_BEATS beats per cycle at every width
// (w = 4: IN_BEATS tokens per cycle). The store pops KPC tokens whenever it holds KPC, so at a
// cycle start it holds < KPC + IN_BEATS (below KPC before a group of at most IN_BEATS tokens;
// from there one pop brings it below 2*IN_BEATS <= KPC + IN_BEATS), and since SIZE >=
// KPC + 2*IN_BEATS - 1, in_ready never drops. With IN_BEATS > KPC the output (KPC tokens per
// cycle) is the limit.
// Latency: a token whose beat is taken at clock edge n can be on out_codes right after edge n.
//
// cfg_width, cfg_signed and cfg_total must be stable while a stream runs. clear (synchronous)
// drops everything (history, partial tokens, stored tokens, counts): assert it before each
// stream. A group with in_count = 0 is taken and changes nothing; a group taken in a clear
// cycle (in_ready does not look at clear) is dropped with the rest.
//
// Define SPATTEN_UNPACK_WIDE_MUTANT_DENSE6 to break the dense 6-bit rule (an expect-fail
// mutant for the tests: phase 1 completes a token whatever the previous phase).
module spatten_plane_unpack_wide #(
    parameter integer D        = 64,
    parameter integer AXI_DW   = 256,
    parameter integer IN_BEATS = 8,
    parameter integer KPC      = 8,
    parameter integer TB       = 11   // token-count bits (cfg_total)
) (
    input  wire                             clk,
    input  wire                             rst_n,
    input  wire                             clear,
    input  wire [3:0]                       cfg_width,   // 4, 6, 8 or 12 (others read as 12)
    input  wire                             cfg_signed,  // 1: MSB / V plane, 0: LSB plane
    input  wire [TB-1:0]                    cfg_total,   // tokens in this stream
    input  wire                             in_valid,
    output wire                             in_ready,
    input  wire [$clog2(IN_BEATS+1)-1:0]    in_count,
    input  wire [IN_BEATS*AXI_DW-1:0]       in_data,
    input  wire [IN_BEATS*2-1:0]            in_phase,    // w = 6: word index mod 3
    output wire                             out_valid,
    input  wire                             out_ready,
    output wire [$clog2(KPC+1)-1:0]         out_count,
    output wire [KPC*D*12-1:0]              out_codes,
    output wire                             out_last
);
    localparam integer ICW  = $clog2(IN_BEATS + 1);
    localparam integer OCW  = $clog2(KPC + 1);
    localparam integer TW   = D * 12;                 // one token's codes = 3 bus words
    localparam integer HALF = AXI_DW / 2;
    // Token store entries: a power of two >= KPC + 2*IN_BEATS - 1 (full input rate, see the
    // header); it is also >= 2*KPC and >= 2*IN_BEATS, so CNW > OCW, ICW below.
    localparam integer SIZE = 1 << $clog2(KPC + 2 * IN_BEATS - 1);
    localparam integer PW   = $clog2(SIZE);
    localparam integer CNW  = PW + 1;                 // entry count 0..SIZE
    localparam integer READY_MAX_I = SIZE - IN_BEATS;
    localparam [CNW-1:0] READY_MAX = READY_MAX_I[CNW-1:0];
    localparam [TB-1:0]  KPC_T = KPC[TB-1:0];
    localparam [OCW-1:0] KPC_O = KPC[OCW-1:0];
    localparam [PW-1:0]  ONE_P = 1;

    generate
        if (AXI_DW != 4 * D) begin : g_bad_geometry
            // Elaboration fails here: the window decode assumes a 4-bit token is one bus word.
            spatten_plane_unpack_wide_needs_axi_dw_equal_4d u_bad ();
        end
    endgenerate

    reg  [2*AXI_DW-1:0] hist;        // last two beats: [0 +: AXI_DW] older, [AXI_DW +:] newest
    reg  [1:0]          prev_phase;  // phase of the stream's last beat; 3 = none yet
    reg  [1:0]          pos;         // w = 8, 12: index of the next beat within its token
    reg  [PW-1:0]       wr_ptr;
    reg  [PW-1:0]       rd_ptr;
    reg  [CNW-1:0]      count;       // tokens in the store
    reg  [TB-1:0]       emitted;     // tokens handed out in this stream
    reg  [TW-1:0]       store [0:SIZE-1];

    wire w6 = (cfg_width == 4'd6);
    wire w8 = (cfg_width == 4'd8);
    wire w4 = (cfg_width == 4'd4);
    // Index of a token's final beat: 1, 2, 3 beats per token (w = 6 uses the phases).
    wire [1:0] last_pos = w4 ? 2'd0 : (w8 ? 2'd1 : (w6 ? 2'd0 : 2'd2));

    assign in_ready = (count <= READY_MAX);
    wire accept = in_valid && in_ready;

    // ext word i: hist older (0), hist newest (1), group lane i-2 (2..IN_BEATS+1).
    wire [(IN_BEATS+2)*AXI_DW-1:0] ext = {in_data, hist};

    // Which lanes complete a token, whether it is an odd 6-bit token, the beat counter after
    // each lane, and the store entry of each lane's token (wr_ptr + completing lanes before).
    reg  [IN_BEATS-1:0]       done;
    reg  [IN_BEATS-1:0]       odd;
    reg  [2*IN_BEATS+1:0]     pos_after;   // [2n +: 2]: pos after n beats of the group
    reg  [IN_BEATS*PW-1:0]    wr_idx;      // [j*PW +: PW]: lane j's entry
    reg  [PW-1:0]             ndone_p;     // completing lanes (PW >= ICW: SIZE >= 2*IN_BEATS)
    reg  [1:0]                p;
    reg  [1:0]                ph;
    reg  [1:0]                prevph;
    integer j;  // every always block has loop variables of its own (a shared one would wake
                // the others each time it changes)
    always @(*) begin
        p = pos;
        prevph = prev_phase;
        ndone_p = {PW{1'b0}};
        pos_after = {(2*IN_BEATS+2){1'b0}};
        pos_after[1:0] = pos;
        for (j = 0; j < IN_BEATS; j = j + 1) begin
            ph = in_phase[2*j +: 2];
`ifdef SPATTEN_UNPACK_WIDE_MUTANT_DENSE6
            if (w6) done[j] = (ph == 2'd2) || (ph == 2'd1);
`else
            if (w6) done[j] = (ph == 2'd2) || (ph == 2'd1 && prevph == 2'd0);
`endif
            else done[j] = (p == last_pos);
            done[j] = done[j] && (j[ICW-1:0] < in_count);
            odd[j] = (ph == 2'd2);
            wr_idx[j*PW +: PW] = wr_ptr + ndone_p;
            ndone_p = ndone_p + (done[j] ? ONE_P : {PW{1'b0}});
            p = (p == last_pos) ? 2'd0 : p + 2'd1;
            prevph = ph;
            pos_after[2*j+2 +: 2] = p;
        end
    end
    wire [ICW-1:0] ndone = ndone_p[ICW-1:0];

    // Decode of one token: its string is the window ext[j*AXI_DW +: TW] of its completing
    // lane j shifted by a constant per width (w12: 0, w8 and even w6: one word, odd w6: 1.5
    // words, w4: two words); element e is the code at bit e*width, zero-extended, with the bits
    // above its width set when it is negative and signed (one mask per width for every
    // element). Called only in the store's clocked write, not as combinational logic: the
    // simulators evaluate it once per taken token, and Verilator emits it once.
    function [TW-1:0] decode_token;
        input [TW-1:0] win;
        input [3:0]    width;
        input          sgn;
        input          odd_w6;
        reg   [TW-1:0] tok;
        reg   [11:0]   low;    // the code's bits
        reg   [11:0]   top;    // its sign bit (none at w = 12)
        reg   [11:0]   field;
        integer        step, e;
        begin
            if (width == 4'd4)
                tok = win >> (2 * AXI_DW);
            else if (width == 4'd8 || (width == 4'd6 && !odd_w6))
                tok = win >> AXI_DW;
            else if (width == 4'd6)
                tok = win >> (AXI_DW + HALF);
            else
                tok = win;
            case (width)
                4'd4:    begin step = 4;  low = 12'h00f; top = 12'h008; end
                4'd6:    begin step = 6;  low = 12'h03f; top = 12'h020; end
                4'd8:    begin step = 8;  low = 12'h0ff; top = 12'h080; end
                default: begin step = 12; low = 12'hfff; top = 12'h000; end
            endcase
            // (e*step + 12 <= TW for every width: the select never leaves the token window.)
            // A loop in Verilator's C++ too (unrolled: D copies of the body).
            /* verilator unroll_disable */
            for (e = 0; e < D; e = e + 1) begin
                field = tok[e*step +: 12] & low;
                decode_token[e*12 +: 12] =
                    field | ((sgn && (field & top) != 12'h000) ? ~low : 12'h000);
            end
        end
    endfunction

    // History after the group: its last two beats (ext words in_count, in_count + 1).
    reg  [2*AXI_DW-1:0] hist_next;
    reg  [1:0]          phase_next;
    reg  [1:0]          pos_next;
    integer jh;
    always @(*) begin
        hist_next = hist;
        phase_next = prev_phase;
        pos_next = pos;
        for (jh = 1; jh <= IN_BEATS; jh = jh + 1) begin
            if (in_count == jh[ICW-1:0]) begin
                hist_next = ext[jh*AXI_DW +: 2*AXI_DW];
                phase_next = in_phase[2*(jh-1) +: 2];
                pos_next = pos_after[2*jh +: 2];
            end
        end
    end

    // Output beat: KPC tokens from the read pointer, or the rest of the stream.
    wire [TB-1:0]  remaining = cfg_total - emitted;
    assign out_last  = (remaining <= KPC_T);
    assign out_count = out_last ? remaining[OCW-1:0] : KPC_O;
    wire [CNW-1:0] out_count_c = {{(CNW-OCW){1'b0}}, out_count};
    assign out_valid = (remaining != {TB{1'b0}}) && (count >= out_count_c);
    wire pop = out_valid && out_ready;

    genvar lane;
    generate
        for (lane = 0; lane < KPC; lane = lane + 1) begin : g_out
            localparam [PW-1:0]  OFF = lane;
            localparam [OCW-1:0] LANE_O = lane;
            wire [PW-1:0] rd_idx = rd_ptr + OFF;
            // Lanes past the stream's last token read as zero (never stale or unwritten).
            assign out_codes[lane*TW +: TW] = (LANE_O < out_count) ? store[rd_idx] : {TW{1'b0}};
        end
    endgenerate

    // Pointer and count updates (all widths made explicit).
    wire [ICW-1:0]     n_new = accept ? ndone : {ICW{1'b0}};
    wire [OCW-1:0]     n_pop = pop ? out_count : {OCW{1'b0}};
    wire [CNW-1:0] n_new_c = {{(CNW-ICW){1'b0}}, n_new};   // CNW > ICW, OCW (SIZE >= 2*both)
    wire [CNW-1:0] n_pop_c = {{(CNW-OCW){1'b0}}, n_pop};
    wire [TB-1:0]  n_pop_t = {{(TB-OCW){1'b0}}, n_pop};     // TB > OCW
    // The pointers run mod SIZE: the carry out of PW bits is dropped.
    /* verilator lint_off UNUSEDSIGNAL */
    wire [CNW-1:0] wr_next = {1'b0, wr_ptr} + n_new_c;
    wire [CNW-1:0] rd_next = {1'b0, rd_ptr} + n_pop_c;
    /* verilator lint_on UNUSEDSIGNAL */

    // A completing lane's token goes to its entry (the k-th completing lane of the group to
    // (wr_ptr + k) mod SIZE: distinct entries, as SIZE > IN_BEATS). A loop in Verilator's C++
    // too: one copy of decode_token, not IN_BEATS.
    integer jw;
    always @(posedge clk) begin
        /* verilator unroll_disable */
        for (jw = 0; jw < IN_BEATS; jw = jw + 1) begin
            if (accept && done[jw])
                store[wr_idx[jw*PW +: PW]] <= decode_token(ext[jw*AXI_DW +: TW], cfg_width,
                                                           cfg_signed, odd[jw]);
        end
    end

    always @(posedge clk) begin
        if (!rst_n || clear) begin
            hist <= {2*AXI_DW{1'b0}};
            prev_phase <= 2'd3;
            pos <= 2'd0;
            wr_ptr <= {PW{1'b0}};
            rd_ptr <= {PW{1'b0}};
            count <= {CNW{1'b0}};
            emitted <= {TB{1'b0}};
        end else begin
            if (accept) begin
                hist <= hist_next;
                prev_phase <= phase_next;
                pos <= pos_next;
            end
            wr_ptr <= wr_next[PW-1:0];
            rd_ptr <= rd_next[PW-1:0];
            count <= count + n_new_c - n_pop_c;
            emitted <= emitted + n_pop_t;
        end
    end
endmodule
