// Partition writer of the top-k engine (docs/architecture.md, section 6).
// Each cycle with `in_valid` it takes one row of LANES values and a mask, compacts the masked
// values (order kept: lane 0 first) behind the up to LANES-1 values still staged, and when
// LANES or more are staged it writes one full row (combinational write port, registered in the
// RAM) at row address 0, 1, 2, ... of its region. `flush` writes the staged remainder as a
// final partial row (lanes >= remainder are zero; the reader masks them by count). `clr`
// (synchronous, wins over everything) empties the stage and restarts at row 0. `total` counts
// every value accepted since the last clear. `sample` is a value of the partition for the
// engine's next pivot: the first value accepted in the first cycle, then the first value of the
// first cycle that takes `total` past twice the position of the previous sample, so it sits in
// the later half of the partition's order (never the first value of a sorted run).
module spatten_topk_stage #(
    parameter integer VALUE_BITS = 32,
    parameter integer LANES      = 16,   // power of two
    parameter integer LANE_BITS  = 4,    // clog2(LANES)
    parameter integer ROW_BITS   = 6,
    parameter integer COUNT_BITS = 11
) (
    input  wire                          clk,
    input  wire                          rst_n,
    input  wire                          clr,
    input  wire                          in_valid,
    input  wire [LANES-1:0]              in_mask,
    input  wire [LANES*VALUE_BITS-1:0]   in_data,
    input  wire                          flush,
    output reg                           wr_en,
    output wire [ROW_BITS-1:0]           wr_addr,
    output reg  [LANES*VALUE_BITS-1:0]   wr_data,
    output reg  [COUNT_BITS-1:0]         total,
    output reg  [VALUE_BITS-1:0]         sample
);
    localparam integer VB = VALUE_BITS;
    localparam integer SW = (LANES - 1) * VB;       // staged bits
    localparam integer MW = (2 * LANES - 1) * VB;   // merged bits

    reg  [SW-1:0]          stg;       // staged values, entries >= sc are zero
    reg  [LANE_BITS-1:0]   sc;        // staged count, 0..LANES-1
    reg  [ROW_BITS-1:0]    wrow;      // next row to write
    reg  [LANES*VB-1:0]    cpk;       // compacted input, entries >= cnt are zero
    reg  [LANE_BITS:0]     cnt;       // masked lanes this cycle, 0..LANES
    reg  [MW-1:0]          merged;
    reg  [LANE_BITS:0]     tot;       // sc + cnt, at most 2*LANES-1
    reg  [COUNT_BITS-1:0]  s_pos;     // partition position of the sample + 1 (0: none yet)
    integer j;

    always @* begin
        cpk = {LANES*VB{1'b0}};
        cnt = {(LANE_BITS+1){1'b0}};
        for (j = 0; j < LANES; j = j + 1) begin
            if (in_mask[j]) begin
                cpk[cnt*VB +: VB] = in_data[j*VB +: VB];
                cnt = cnt + 1'b1;
            end
        end
        merged = {{(LANES*VB){1'b0}}, stg} | ({{SW{1'b0}}, cpk} << (sc * VB));
        tot = {1'b0, sc} + cnt;
        if (flush) begin
            wr_en   = (sc != {LANE_BITS{1'b0}});
            wr_data = {{VB{1'b0}}, stg};
        end else begin
            wr_en   = in_valid && tot[LANE_BITS];
            wr_data = merged[LANES*VB-1:0];
        end
    end

    assign wr_addr = wrow;

    // total + cnt > 2 * s_pos, one bit wider than the counts
    wire take_sample = (cnt != {(LANE_BITS+1){1'b0}}) &&
        (({1'b0, total} + {{(COUNT_BITS-LANE_BITS){1'b0}}, cnt}) > {s_pos, 1'b0});

    always @(posedge clk) begin
        if (!rst_n || clr) begin
            stg   <= {SW{1'b0}};
            sc    <= {LANE_BITS{1'b0}};
            wrow  <= {ROW_BITS{1'b0}};
            total <= {COUNT_BITS{1'b0}};
            s_pos  <= {COUNT_BITS{1'b0}};
            sample <= {VB{1'b0}};
        end else if (in_valid) begin
            total <= total + {{(COUNT_BITS-LANE_BITS-1){1'b0}}, cnt};
            if (take_sample) begin
                sample <= cpk[VB-1:0];
                s_pos  <= total + 1'b1;
            end
            if (tot[LANE_BITS]) begin
                stg  <= merged[MW-1:LANES*VB];
                sc   <= tot[LANE_BITS-1:0];          // tot - LANES (tot < 2*LANES)
                wrow <= wrow + 1'b1;
            end else begin
                stg  <= merged[SW-1:0];
                sc   <= tot[LANE_BITS-1:0];
            end
        end
    end
endmodule
