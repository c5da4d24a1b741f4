// Testbench top (not product RTL): spatten_fetcher with one R playout FIFO
// (verif/hdl/axi_r_playout.v) per read channel, for the AXI responder's tests in HDL playout
// mode (tests/verif/cocotb_axi_responder.py). Every fetcher port is passed through except the
// R channels; the tb_* pins are those of verif/hdl/spatten_core_tb.v.
module spatten_fetcher_tb #(
    parameter integer N_CH = 1
) (
    input  wire                 clk,
    input  wire                 rst_n,
    input  wire                 start,
    input  wire [31:0]          base,
    input  wire [1:0]           stride_beats,
    input  wire                 dense_w6,
    output wire                 busy,
    output wire                 done,
    output wire [1:0]           error,
    output wire [23:0]          beats,
    input  wire                 idx_valid,
    output wire                 idx_ready,
    input  wire [9:0]           idx_token,
    input  wire                 idx_last,
    output wire [N_CH-1:0]      m_axi_arvalid,
    input  wire [N_CH-1:0]      m_axi_arready,
    output wire [N_CH*32-1:0]   m_axi_araddr,
    output wire [N_CH*8-1:0]    m_axi_arlen,
    output wire [N_CH*3-1:0]    m_axi_arsize,
    output wire [N_CH*2-1:0]    m_axi_arburst,
    output wire                 beat_valid,
    input  wire                 beat_ready,
    output wire [255:0]         beat_data,
    output wire [1:0]           beat_phase,
    // R playout, per channel
    output wire [7:0]           tb_r_beat_bytes,
    output reg  [31:0]          tb_cycle,
    input  wire [N_CH*5-1:0]    tb_r_max_outstanding,
    output wire [N_CH-1:0]      tb_ar_ready,
    input  wire [N_CH-1:0]      tb_r_push,
    input  wire [N_CH*5-1:0]    tb_r_beats,
    input  wire [N_CH*16-1:0]   tb_r_extra,
    input  wire [N_CH*32-1:0]   tb_r_resp,
    input  wire [N_CH*256-1:0]  tb_r_gap,
    input  wire [N_CH*16-1:0]   tb_r_released,
    output wire [N_CH*16-1:0]   tb_r_done,
    output wire [N_CH*32-1:0]   tb_r_first,
    output wire [N_CH*512-1:0]  tb_r_log
);
    wire [N_CH-1:0]        arready_core;
    wire [N_CH-1:0]     rvalid, rready, rlast;
    wire [N_CH*256-1:0] rdata;
    wire [N_CH*2-1:0]   rresp;

    assign tb_r_beat_bytes = 8'd32;

    always @(posedge clk) begin
        if (!rst_n)
            tb_cycle <= 32'd0;
        else
            tb_cycle <= tb_cycle + 32'd1;
    end

    spatten_fetcher #(.N_CH(N_CH)) u_fetcher (
        .clk(clk), .rst_n(rst_n), .start(start), .base(base), .stride_beats(stride_beats),
        .dense_w6(dense_w6), .busy(busy), .done(done), .error(error), .beats(beats),
        .idx_valid(idx_valid), .idx_ready(idx_ready), .idx_token(idx_token),
        .idx_last(idx_last),
        .m_axi_arvalid(m_axi_arvalid), .m_axi_arready(arready_core),
        .m_axi_araddr(m_axi_araddr), .m_axi_arlen(m_axi_arlen), .m_axi_arsize(m_axi_arsize),
        .m_axi_arburst(m_axi_arburst),
        .m_axi_rvalid(rvalid), .m_axi_rready(rready), .m_axi_rdata(rdata),
        .m_axi_rresp(rresp), .m_axi_rlast(rlast),
        .beat_valid(beat_valid), .beat_ready(beat_ready), .beat_data(beat_data),
        .beat_phase(beat_phase)
    );

    genvar ch;
    assign tb_ar_ready = arready_core;  // the responder's arready where a burst has room

    generate
        for (ch = 0; ch < N_CH; ch = ch + 1) begin : g_ch
            axi_r_playout #(.DW(256), .CH(ch)) u_playout (
                .clk(clk), .rst_n(rst_n), .cyc(tb_cycle),
                .push_tog(tb_r_push[ch]),
                .push_beats(tb_r_beats[5*ch +: 5]),
                .push_extra(tb_r_extra[16*ch +: 16]),
                .push_resp(tb_r_resp[32*ch +: 32]),
                .push_gap(tb_r_gap[256*ch +: 256]),
                .released(tb_r_released[16*ch +: 16]),
                .arvalid(m_axi_arvalid[ch]), .arready_tb(m_axi_arready[ch]),
                .arready(arready_core[ch]),
                .max_outstanding(tb_r_max_outstanding[5*ch +: 5]),
                .rvalid(rvalid[ch]), .rready(rready[ch]),
                .rdata(rdata[256*ch +: 256]), .rresp(rresp[2*ch +: 2]),
                .rlast(rlast[ch]),
                .done(tb_r_done[16*ch +: 16]), .first(tb_r_first[32*ch +: 32]),
                .log(tb_r_log[512*ch +: 512])
            );
        end
    endgenerate
endmodule
