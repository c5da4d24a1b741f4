// Sequential unsigned restoring divider: one quotient bit per cycle (docs/architecture.md 4.4,
// R = floor(2^40 / S) of the softmax).
//
//   quotient  = floor(dividend / divisor)        NUM_W bits
//   remainder = dividend - quotient * divisor    DEN_W bits
//
// Handshake: `start` (one cycle, sampled at a rising edge) loads dividend and divisor and
// already performs the first step; the remaining NUM_W-1 steps follow one per cycle while
// `busy` is high. `done` pulses for one cycle when the result is ready, NUM_W cycles after the
// start cycle (start at cycle c -> done and the result visible in cycle c + NUM_W); quotient
// and remainder then hold until the next start. A start while busy restarts the division.
// Divide by zero gives quotient = all ones and an unspecified remainder (the softmax never
// divides by zero: S >= 2^15).
module spatten_divider #(
    parameter integer NUM_W = 41,  // dividend and quotient width (>= 2)
    parameter integer DEN_W = 26   // divisor and remainder width (>= 1)
) (
    input  wire             clk,
    input  wire             rst_n,
    input  wire             start,
    input  wire [NUM_W-1:0] dividend,
    input  wire [DEN_W-1:0] divisor,
    output reg              busy,
    output reg              done,
    output reg  [NUM_W-1:0] quotient,  // dividend bits shift out at the top, quotient bits in
    output reg  [DEN_W-1:0] remainder
);
    localparam integer CW = $clog2(NUM_W + 1);

    reg [DEN_W-1:0] den;
    reg [CW-1:0]    steps_left;

    // One restoring step, from the registers or (at start) from the inputs.
    wire [DEN_W-1:0] rem_cur = start ? {DEN_W{1'b0}} : remainder;
    wire [NUM_W-1:0] quo_cur = start ? dividend : quotient;
    wire [DEN_W-1:0] den_cur = start ? divisor : den;
    wire [DEN_W:0]   trial   = {rem_cur, quo_cur[NUM_W-1]};
    wire             fits    = trial >= {1'b0, den_cur};
    // rem_cur < den_cur, so when it fits trial - den_cur < den_cur: the low DEN_W bits of the
    // difference are exact (with den_cur = 0 the top bit of trial is dropped: unspecified).
    wire [DEN_W-1:0] diff     = trial[DEN_W-1:0] - den_cur;
    wire [DEN_W-1:0] rem_next = fits ? diff : trial[DEN_W-1:0];
    wire [NUM_W-1:0] quo_next = {quo_cur[NUM_W-2:0], fits};

    always @(posedge clk) begin
        if (!rst_n) begin
            busy <= 1'b0;
            done <= 1'b0;
            quotient <= {NUM_W{1'b0}};
            remainder <= {DEN_W{1'b0}};
            den <= {DEN_W{1'b0}};
            steps_left <= {CW{1'b0}};
        end else begin
            done <= 1'b0;
            if (start) begin
                den <= divisor;
                quotient <= quo_next;
                remainder <= rem_next;
                steps_left <= NUM_W[CW-1:0] - 1'b1;
                busy <= 1'b1;
            end else if (busy) begin
                quotient <= quo_next;
                remainder <= rem_next;
                steps_left <= steps_left - 1'b1;
                if (steps_left == 1) begin
                    busy <= 1'b0;
                    done <= 1'b1;
                end
            end
        end
    end
endmodule
