// 2^(-e/256) in unsigned Q1.15 for an unsigned Q.8 exponent e (docs/architecture.md, 4.4).
// The fractional byte indexes the ROM, the integer part shifts the entry right (truncating);
// an integer part of 16 or more gives 0. Combinational: the softmax pipeline registers around it.
module spatten_exp2 #(
    parameter integer EXP_BITS = 13  // exponent width; values >= 16*256 all give 0
) (
    input  wire [EXP_BITS-1:0] exponent,
    output wire [15:0]         value
);
    wire [15:0] lut_value;
    wire [EXP_BITS-9:0] int_part = exponent[EXP_BITS-1:8];

    spatten_exp2_lut u_lut (
        .frac  (exponent[7:0]),
        .value (lut_value)
    );

    assign value = (int_part >= 16) ? 16'd0 : (lut_value >> int_part[3:0]);
endmodule
