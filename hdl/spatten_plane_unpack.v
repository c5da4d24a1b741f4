// Plane unpacker: AXI R-data beats of one K/V bit plane -> one vector of D codes per token
// (docs/architecture.md, section 3; reference models/formats.py: pack_plane / unpack_plane).
//
// A token of a plane of width w (cfg_width = 4, 6, 8 or 12) is D*w bits, element d in bits
// [d*w, d*w+w) of the token's little-endian bit string. Widths 4, 8, 12 are whole bus words,
// NB(w) = D*w / AXI_DW (1, 2, 3 beats at the defaults; w = 6 below). Beat j of a token
// carries bits [j*AXI_DW, (j+1)*AXI_DW) of that string (AXI byte-lane order: byte i of the
// beat on in_data[8i+7:8i], which is exactly bit j*AXI_DW + k of the string on in_data[k]).
//
// Dense 6-bit planes (section 3): a token is 1.5 bus words (D*6 = 1.5*AXI_DW; the default
// geometry), token t at byte 48t, so the beats are not per token. Each beat comes with in_phase
// = its word index in the plane mod 3 (from the fetcher): phase 0 is the first word of an even
// token (buffered), phase 1 holds that token's last half in its low half (the token is complete
// when the beat before was its phase 0 word) and the next odd token's first half in its high
// half (buffered), phase 2 is the rest of that odd token (complete). in_phase is ignored for
// the other widths.
//
// Output: out_codes holds element d in bits [12d+11 : 12d]: the w-bit code sign-extended to
// 12 bits when cfg_signed = 1 (K MSB plane, V plane) or zero-extended when cfg_signed = 0
// (K LSB plane). out_last is in_last as sampled on the token's final beat (the core marks
// the stream's last token with it; in_last on other beats is ignored).
//
// Handshake: in_valid/in_ready and out_valid/out_ready, standard valid/ready (data held while
// valid && !ready). The earlier beats of a token go into a (NB_MAX-1)-word buffer; the token's
// final beat is decoded combinationally with the buffer and registered into the output stage,
// a two-entry skid buffer (output register + skid register). in_ready = !skid_valid depends on
// registers only (no combinational path from out_ready). Latency: a token's final beat accepted
// at clock edge n is on out_codes (out_valid = 1) right after edge n (one register). Throughput:
// one beat per cycle while out_ready stays high (a 1-beat plane gives one token per cycle).
//
// cfg_width and cfg_signed must be stable while a plane streams (from the first beat of its
// first token to its last beat). clear (synchronous) drops a partial token and empties the
// output stage: use it between planes when a stream was cut short (AXI error drain).
module spatten_plane_unpack #(
    parameter integer D      = 64,
    parameter integer AXI_DW = 256
) (
    input  wire              clk,
    input  wire              rst_n,
    input  wire              clear,
    input  wire [3:0]        cfg_width,    // 4, 6, 8 or 12
    input  wire              cfg_signed,   // 1: MSB / V plane, 0: LSB plane
    input  wire              in_valid,
    output wire              in_ready,
    input  wire [AXI_DW-1:0] in_data,
    input  wire              in_last,
    input  wire [1:0]        in_phase,     // dense 6-bit planes: word index mod 3
    output reg               out_valid,
    input  wire              out_ready,
    output reg  [D*12-1:0]   out_codes,
    output reg               out_last
);
    localparam integer NB4    = (D * 4 + AXI_DW - 1) / AXI_DW;
    localparam integer NB6    = (D * 6 + AXI_DW - 1) / AXI_DW;
    localparam integer NB8    = (D * 8 + AXI_DW - 1) / AXI_DW;
    localparam integer NB12   = (D * 12 + AXI_DW - 1) / AXI_DW;
    localparam integer NB_MAX = NB12;
    // Beat counter width: enough for NB_MAX-1 (at least one bit).
    localparam integer CW     = (NB_MAX > 2) ? $clog2(NB_MAX) : 1;
    // Buffer of a token's earlier beats (at least one word so the ports stay legal).
    localparam integer BUFW   = (NB_MAX > 1) ? NB_MAX - 1 : 1;

    localparam integer     LB4_I  = NB4 - 1;   // index of the final beat per width
    localparam integer     LB6_I  = NB6 - 1;
    localparam integer     LB8_I  = NB8 - 1;
    localparam integer     LB12_I = NB12 - 1;
    localparam [CW-1:0]    LB4    = LB4_I[CW-1:0];
    localparam [CW-1:0]    LB6    = LB6_I[CW-1:0];
    localparam [CW-1:0]    LB8    = LB8_I[CW-1:0];
    localparam [CW-1:0]    LB12   = LB12_I[CW-1:0];

    localparam integer HALF = AXI_DW / 2;
    reg  [CW-1:0]          beat;           // index of the next beat within its token
    reg                    have_even;      // w = 6: the last beat was a phase-0 word (in buffer)
    reg  [BUFW*AXI_DW-1:0] buffer;         // beats 0..NB-2 of the current token
    reg                    skid_valid;
    reg  [D*12-1:0]        skid_codes;
    reg                    skid_last;

    // Beats per token for the configured width (widths other than 4/6/8/12 are rejected by
    // the descriptor check and read as 12 here).
    reg  [CW-1:0]          last_beat;
    always @(*) begin
        case (cfg_width)
            4'd4:    last_beat = LB4;
            4'd6:    last_beat = LB6;
            4'd8:    last_beat = LB8;
            default: last_beat = LB12;
        endcase
    end

    assign in_ready = !skid_valid;
    wire accept = in_valid && in_ready;
    wire w6 = (cfg_width == 4'd6);
    wire final_beat = w6 ? ((in_phase == 2'd1 && have_even) || in_phase == 2'd2)
                         : (beat == last_beat);
    wire token_done = accept && final_beat;

    // The token's bit string as of its final beat: word j is the current beat when j is the
    // beat index, else the buffered word. Words above the final beat are never read (element
    // extraction stays below D*w <= NB(w)*AXI_DW bits).
    reg  [NB_MAX*AXI_DW-1:0] token_bits;
    integer j;
    always @(*) begin
        token_bits = {NB_MAX*AXI_DW{1'b0}};
        // the buffer holds NB_MAX-1 words: the last word can only be the current beat
        for (j = 0; j < NB_MAX - 1; j = j + 1) begin
            if (beat == j[CW-1:0])
                token_bits[j*AXI_DW +: AXI_DW] = in_data;
            else
                token_bits[j*AXI_DW +: AXI_DW] = buffer[j*AXI_DW +: AXI_DW];
        end
        token_bits[(NB_MAX-1)*AXI_DW +: AXI_DW] = in_data;
    end

    // w = 6: the token completed by this beat (even: phase-0 word + low half of the phase-1
    // word; odd: high half of the phase-1 word + the phase-2 word).
    wire [AXI_DW+HALF-1:0] tok6 = (in_phase == 2'd2)
        ? {in_data, buffer[AXI_DW +: HALF]} : {in_data[HALF-1:0], buffer[0 +: AXI_DW]};

    // Element extraction and sign/zero extension to 12 bits.
    reg  [D*12-1:0] codes;
    integer d;
    always @(*) begin
        codes = {D*12{1'b0}};
        for (d = 0; d < D; d = d + 1) begin
            case (cfg_width)
                4'd4:
                    codes[d*12 +: 12] = {{8{cfg_signed & token_bits[d*4 + 3]}},
                                         token_bits[d*4 +: 4]};
                4'd6:
                    codes[d*12 +: 12] = {{6{cfg_signed & tok6[d*6 + 5]}}, tok6[d*6 +: 6]};
                4'd8:
                    codes[d*12 +: 12] = {{4{cfg_signed & token_bits[d*8 + 7]}},
                                         token_bits[d*8 +: 8]};
                default:
                    codes[d*12 +: 12] = token_bits[d*12 +: 12];
            endcase
        end
    end

    integer b;
    always @(posedge clk) begin
        if (!rst_n || clear) begin
            beat <= {CW{1'b0}};
            have_even <= 1'b0;
            buffer <= {BUFW*AXI_DW{1'b0}};
            out_valid <= 1'b0;
            out_codes <= {D*12{1'b0}};
            out_last <= 1'b0;
            skid_valid <= 1'b0;
            skid_codes <= {D*12{1'b0}};
            skid_last <= 1'b0;
        end else begin
            if (accept && w6) begin
                have_even <= (in_phase == 2'd0);
                if (in_phase == 2'd0) buffer[0 +: AXI_DW] <= in_data;
                if (in_phase == 2'd1) buffer[AXI_DW +: HALF] <= in_data[AXI_DW-1:HALF];
            end else if (accept) begin
                beat <= final_beat ? {CW{1'b0}} : beat + 1'b1;
                for (b = 0; b < BUFW; b = b + 1) begin
                    if (!final_beat && beat == b[CW-1:0])
                        buffer[b*AXI_DW +: AXI_DW] <= in_data;
                end
            end
            // Output stage: the skid entry (if any) goes first; a new token arrives only while
            // the skid entry is empty (in_ready).
            if (!out_valid || out_ready) begin
                out_valid <= skid_valid || token_done;
                if (skid_valid) begin
                    out_codes <= skid_codes;
                    out_last <= skid_last;
                    skid_valid <= 1'b0;
                end else if (token_done) begin
                    out_codes <= codes;
                    out_last <= in_last;
                end
            end else if (token_done) begin
                skid_valid <= 1'b1;
                skid_codes <= codes;
                skid_last <= in_last;
            end
        end
    end
endmodule
