// Reduced-precision reconstruction (docs/architecture.md, section 4.1; reference
// models/formats.py: combine, reconstruct). Purely combinational, D elements in parallel.
//
//   p     = msb_bits + lsb_bits                         (lsb_bits = 0: MSB plane only)
//   c     = (msb << lsb_bits) | lsb                     signed p-bit code
//   x_eff = (c << (12 - p)) + (p < 12 ? 1 << (11 - p) : 0)
//
// Since c << (12-p) has its low 12-p bits zero, x_eff is the 12-bit word
// {msb[msb_bits-1:0], lsb[lsb_bits-1:0], 1, 0...0} (the "1" only when p < 12), so the adder
// of the formula is an OR here.
//
// Inputs, element d in bits [12d+11 : 12d] (the spatten_plane_unpack output format):
//   msb_codes: MSB (or V) plane codes, msb_bits wide, sign-extended to 12 bits. Only the low
//              msb_bits bits are used, so a zero-extended code works as well.
//   lsb_codes: LSB plane codes of the same token; only the low lsb_bits bits are used (masked
//              here), so it may hold anything when lsb_bits = 0.
// The core supplies msb_codes from its stored MSB-code vector of the token and lsb_codes from
// the LSB plane unpacker; for the MSB pass (and for V) it ties lsb_bits to 0.
// msb_bits in {4, 6, 8, 12}, lsb_bits in {0, 4, 6, 8}, msb_bits + lsb_bits <= 12 (the
// descriptor check guarantees it; other values give some 12-bit word, never X).
//
// Output x_eff, same layout, 12-bit two's complement: feed it to spatten_dot_product's k input
// (its first stage registers the products), or register it in the core.
module spatten_reconstruct #(
    parameter integer D = 64
) (
    input  wire [3:0]      msb_bits,
    input  wire [3:0]      lsb_bits,
    input  wire [D*12-1:0] msb_codes,
    input  wire [D*12-1:0] lsb_codes,
    output reg  [D*12-1:0] x_eff
);
    wire [4:0]  prec = {1'b0, msb_bits} + {1'b0, lsb_bits};
    // 12 - p, saturated at 0 for out-of-range configurations.
    wire [4:0]  low_bits = (prec >= 5'd12) ? 5'd0 : 5'd12 - prec;
    // Midpoint bit of the dropped interval, 1 << (11 - p) when p < 12.
    wire [11:0] round_bit = (prec >= 5'd12) ? 12'd0 : (12'd1 << (low_bits - 5'd1));
    wire [11:0] lsb_mask = ~(12'hFFF << lsb_bits);
    // Shift of the MSB code: lsb_bits + (12 - p) = 12 - msb_bits (0 when msb_bits >= 12).
    wire [3:0]  msb_shift = (msb_bits >= 4'd12) ? 4'd0 : 4'd12 - msb_bits;

    integer d;
    always @(*) begin
        x_eff = {D*12{1'b0}};
        for (d = 0; d < D; d = d + 1) begin
            x_eff[d*12 +: 12] = (msb_codes[d*12 +: 12] << msb_shift)
                              | ((lsb_codes[d*12 +: 12] & lsb_mask) << low_bits)
                              | round_bit;
        end
    end
endmodule
