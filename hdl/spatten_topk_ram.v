// Simple dual-port RAM of the top-k engine: one synchronous write port and one synchronous
// read port on the same clock (a block-RAM template; read data registered, read-before-write
// order is never relied on: the engine never reads an address in the cycle it writes it).
// No reset: contents are undefined until written.
module spatten_topk_ram #(
    parameter integer DEPTH = 64,
    parameter integer AW    = 6,    // clog2(DEPTH)
    parameter integer W     = 32
) (
    input  wire          clk,
    input  wire          wr_en,
    input  wire [AW-1:0] wr_addr,
    input  wire [W-1:0]  wr_data,
    input  wire [AW-1:0] rd_addr,
    output reg  [W-1:0]  rd_data
);
    reg [W-1:0] mem [0:DEPTH-1];

    always @(posedge clk) begin
        if (wr_en) mem[wr_addr] <= wr_data;
        rd_data <= mem[rd_addr];
    end
endmodule
