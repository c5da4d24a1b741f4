// Simple dual-port RAM: one synchronous write port and one synchronous read port on the same
// clock (the block-RAM template every synthesis tool infers). The read data register updates
// only when `rd_en` is high, so a stalled reading pipeline sees its data held; tie `rd_en` high
// for a plain registered read. Users never read and write the same address in one cycle, so the
// read-during-write order is never relied on. No reset: contents are undefined until written.
module spatten_sdp_ram #(
    parameter integer DEPTH = 1024,
    parameter integer AW    = 10,   // clog2(DEPTH)
    parameter integer W     = 32
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
