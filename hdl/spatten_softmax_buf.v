// Simple dual-port buffer of the softmax unit: one synchronous write and one synchronous read
// port on the same clock (a block-RAM template). The read data register only updates when
// `rd_en` is high, so it holds its value while the reading pipeline is stalled. The user never
// reads and writes the same address in one cycle. No reset: contents are undefined until written.
module spatten_softmax_buf #(
    parameter integer DEPTH = 1024,
    parameter integer AW    = 10,   // clog2(DEPTH)
    parameter integer W     = 30
) (
    input  wire          clk,
    input  wire          wr_en,
    input  wire [AW-1:0] wr_addr,
    input  wire [W-1:0]  wr_data,
    input  wire          rd_en,
    input  wire [AW-1:0] rd_addr,
    output reg  [W-1:0]  rd_data
);
    reg [W-1:0] mem [0:DEPTH-1];

    always @(posedge clk) begin
        if (wr_en) mem[wr_addr] <= wr_data;
        if (rd_en) rd_data <= mem[rd_addr];
    end
endmodule
