// Test wrapper, not part of the core: two spatten_fetchers (v_*: master 0, priority; k_*:
// master 1) sharing N_CH AXI4 read channels through spatten_axi_read_arbiter, wired as the core
// does with job overlap (tests/hdl/cocotb_axi_read_arbiter_pair.py).
module tb_fetcher_pair #(
    parameter integer N_CH = 2
) (
    input  wire                 clk,
    input  wire                 rst_n,
    // V fetcher (master 0)
    input  wire                 v_start,
    input  wire [31:0]          v_base,
    input  wire [1:0]           v_stride_beats,
    input  wire                 v_dense_w6,
    output wire                 v_done,
    output wire [1:0]           v_error,
    input  wire                 v_idx_valid,
    output wire                 v_idx_ready,
    input  wire [9:0]           v_idx_token,
    input  wire                 v_idx_last,
    output wire                 v_beat_valid,
    input  wire                 v_beat_ready,
    output wire [255:0]         v_beat_data,
    // K fetcher (master 1)
    input  wire                 k_start,
    input  wire [31:0]          k_base,
    input  wire [1:0]           k_stride_beats,
    input  wire                 k_dense_w6,
    output wire                 k_done,
    output wire [1:0]           k_error,
    input  wire                 k_idx_valid,
    output wire                 k_idx_ready,
    input  wire [9:0]           k_idx_token,
    input  wire                 k_idx_last,
    output wire                 k_beat_valid,
    input  wire                 k_beat_ready,
    output wire [255:0]         k_beat_data,
    // shared external AXI4 read channels
    output wire [N_CH-1:0]      m_axi_arvalid,
    input  wire [N_CH-1:0]      m_axi_arready,
    output wire [N_CH*32-1:0]   m_axi_araddr,
    output wire [N_CH*8-1:0]    m_axi_arlen,
    output wire [N_CH*3-1:0]    m_axi_arsize,
    output wire [N_CH*2-1:0]    m_axi_arburst,
    input  wire [N_CH-1:0]      m_axi_rvalid,
    output wire [N_CH-1:0]      m_axi_rready,
    input  wire [N_CH*256-1:0]  m_axi_rdata,
    input  wire [N_CH*2-1:0]    m_axi_rresp,
    input  wire [N_CH-1:0]      m_axi_rlast
);
    wire [N_CH-1:0]     v_arvalid, v_arready, v_rvalid, v_rready, v_rlast;
    wire [N_CH*32-1:0]  v_araddr;
    wire [N_CH*8-1:0]   v_arlen;
    wire [N_CH*3-1:0]   v_arsize;
    wire [N_CH*2-1:0]   v_arburst, v_rresp;
    wire [N_CH*256-1:0] v_rdata;
    wire [N_CH-1:0]     k_arvalid, k_arready, k_rvalid, k_rready, k_rlast;
    wire [N_CH*32-1:0]  k_araddr;
    wire [N_CH*8-1:0]   k_arlen;
    wire [N_CH*3-1:0]   k_arsize;
    wire [N_CH*2-1:0]   k_arburst, k_rresp;
    wire [N_CH*256-1:0] k_rdata;
    wire                v_busy, k_busy;
    wire [23:0]         v_beats, k_beats;
    wire [1:0]          v_beat_phase, k_beat_phase;

    spatten_fetcher #(.AW(32), .DW(256), .N_CH(N_CH), .MAX_BURST(16), .MAX_OUTSTANDING(8),
                      .TOK_BITS(10)) u_v (
        .clk(clk), .rst_n(rst_n), .start(v_start), .base(v_base), .stride_beats(v_stride_beats),
        .dense_w6(v_dense_w6), .busy(v_busy), .done(v_done), .error(v_error), .beats(v_beats),
        .idx_valid(v_idx_valid), .idx_ready(v_idx_ready), .idx_token(v_idx_token),
        .idx_last(v_idx_last),
        .m_axi_arvalid(v_arvalid), .m_axi_arready(v_arready), .m_axi_araddr(v_araddr),
        .m_axi_arlen(v_arlen), .m_axi_arsize(v_arsize), .m_axi_arburst(v_arburst),
        .m_axi_rvalid(v_rvalid), .m_axi_rready(v_rready), .m_axi_rdata(v_rdata),
        .m_axi_rresp(v_rresp), .m_axi_rlast(v_rlast),
        .beat_valid(v_beat_valid), .beat_ready(v_beat_ready), .beat_data(v_beat_data),
        .beat_phase(v_beat_phase));

    spatten_fetcher #(.AW(32), .DW(256), .N_CH(N_CH), .MAX_BURST(16), .MAX_OUTSTANDING(8),
                      .TOK_BITS(10)) u_k (
        .clk(clk), .rst_n(rst_n), .start(k_start), .base(k_base), .stride_beats(k_stride_beats),
        .dense_w6(k_dense_w6), .busy(k_busy), .done(k_done), .error(k_error), .beats(k_beats),
        .idx_valid(k_idx_valid), .idx_ready(k_idx_ready), .idx_token(k_idx_token),
        .idx_last(k_idx_last),
        .m_axi_arvalid(k_arvalid), .m_axi_arready(k_arready), .m_axi_araddr(k_araddr),
        .m_axi_arlen(k_arlen), .m_axi_arsize(k_arsize), .m_axi_arburst(k_arburst),
        .m_axi_rvalid(k_rvalid), .m_axi_rready(k_rready), .m_axi_rdata(k_rdata),
        .m_axi_rresp(k_rresp), .m_axi_rlast(k_rlast),
        .beat_valid(k_beat_valid), .beat_ready(k_beat_ready), .beat_data(k_beat_data),
        .beat_phase(k_beat_phase));

    spatten_axi_read_arbiter #(.AW(32), .DW(256), .N_CH(N_CH), .MAX_OUTSTANDING(16)) u_arb (
        .clk(clk), .rst_n(rst_n),
        .s0_arvalid(v_arvalid), .s0_arready(v_arready), .s0_araddr(v_araddr),
        .s0_arlen(v_arlen), .s0_arsize(v_arsize), .s0_arburst(v_arburst),
        .s0_rvalid(v_rvalid), .s0_rready(v_rready), .s0_rdata(v_rdata), .s0_rresp(v_rresp),
        .s0_rlast(v_rlast),
        .s1_arvalid(k_arvalid), .s1_arready(k_arready), .s1_araddr(k_araddr),
        .s1_arlen(k_arlen), .s1_arsize(k_arsize), .s1_arburst(k_arburst),
        .s1_rvalid(k_rvalid), .s1_rready(k_rready), .s1_rdata(k_rdata), .s1_rresp(k_rresp),
        .s1_rlast(k_rlast),
        .m_axi_arvalid(m_axi_arvalid), .m_axi_arready(m_axi_arready),
        .m_axi_araddr(m_axi_araddr), .m_axi_arlen(m_axi_arlen), .m_axi_arsize(m_axi_arsize),
        .m_axi_arburst(m_axi_arburst), .m_axi_rvalid(m_axi_rvalid),
        .m_axi_rready(m_axi_rready), .m_axi_rdata(m_axi_rdata), .m_axi_rresp(m_axi_rresp),
        .m_axi_rlast(m_axi_rlast));
endmodule
