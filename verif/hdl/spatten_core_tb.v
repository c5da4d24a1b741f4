// Testbench top (not product RTL): spatten_core with one R playout FIFO (axi_r_playout.v) per
// read channel between the Python AXI responder and the core's m_axi_r* pins.
//
// Every port of spatten_core is passed through except the R channels, which the playout FIFOs
// drive; the AR channels stay on the pins, answered by verif/axi_read_responder.py, which
// pushes each accepted burst into its channel's FIFO: the beat data through a file the FIFO
// reads with $fread (axi_r_playout_<ch>.bin in the simulator's working folder, one file per
// channel; a 4096-bit pin write per burst would cost more than the beats it saves), the rest
// on the tb_r_* pins. The environment uses this path whenever the toplevel has `tb_r_push`;
// with spatten_core itself as the toplevel it drives the R pins from Python, beat by beat.
module spatten_core_tb #(
    // spatten_core's parameters, same defaults, passed through (docs/architecture.md 1.1)
    parameter integer D         = 64,
    parameter integer L_MAX     = 1024,
    parameter integer H_MAX     = 32,
    parameter integer N_CH      = 1,
    parameter integer AXI_DW    = 256,
    parameter integer AW        = 32,
    parameter integer QK_MULS   = 64,
    parameter integer PV_MULS   = 64,
    parameter integer TOPK_CMPS = 16,
    parameter integer MAX_BURST = 16,   // <= 16: a FIFO push carries up to 16 beats
    parameter integer SM_LANES  = 8,
    parameter integer DESC_W = 78 + 3 * ((H_MAX > 1) ? $clog2(H_MAX) : 1)
                               + 5 * $clog2(L_MAX + 1) + 3 * AW + 12 * D,
    parameter integer RES_W  = 365 + 2 * $clog2(L_MAX + 1) + 16 * D
) (
    input  wire                 clk,
    input  wire                 rst_n,
    input  wire                 desc_valid,
    output wire                 desc_ready,
    input  wire [DESC_W-1:0]    desc_data,
    output wire                 res_valid,
    input  wire                 res_ready,
    output wire [RES_W-1:0]     res_data,
    output wire [N_CH-1:0]      m_axi_arvalid,
    input  wire [N_CH-1:0]      m_axi_arready,
    output wire [N_CH*AW-1:0]   m_axi_araddr,
    output wire [N_CH*8-1:0]    m_axi_arlen,
    output wire [N_CH*3-1:0]    m_axi_arsize,
    output wire [N_CH*2-1:0]    m_axi_arburst,
    input  wire                 dbg_req,
    input  wire                 dbg_heads,
    input  wire [$clog2(L_MAX+1)-1:0] dbg_n,
    output wire                 dbg_valid,
    input  wire                 dbg_ready,
    output wire [32*32-1:0]     dbg_imp,
    output wire [31:0]          dbg_kept,
    output wire                 dbg_last,
    // R playout, per channel (see axi_r_playout.v)
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
    wire [N_CH-1:0]        rvalid, rready, rlast;
    wire [N_CH*AXI_DW-1:0] rdata;
    wire [N_CH*2-1:0]      rresp;

    localparam integer BEAT_BYTES = AXI_DW / 8;
    assign tb_r_beat_bytes = BEAT_BYTES[7:0];

    always @(posedge clk) begin
        if (!rst_n)
            tb_cycle <= 32'd0;
        else
            tb_cycle <= tb_cycle + 32'd1;
    end

    // Bursts of more than 16 beats do not fit a FIFO push: an elaboration error (Verilog-2005
    // has no $error), like spatten_core's own guard.
    generate
        if (MAX_BURST > 16) begin : unsupported
            spatten_core_tb_max_burst_above_16 see_axi_r_playout ();
        end
    endgenerate

    spatten_core #(.D(D), .L_MAX(L_MAX), .H_MAX(H_MAX), .N_CH(N_CH), .AXI_DW(AXI_DW),
                   .AW(AW), .QK_MULS(QK_MULS), .PV_MULS(PV_MULS), .TOPK_CMPS(TOPK_CMPS),
                   .MAX_BURST(MAX_BURST), .SM_LANES(SM_LANES), .DESC_W(DESC_W),
                   .RES_W(RES_W)) u_core (
        .clk(clk), .rst_n(rst_n),
        .desc_valid(desc_valid), .desc_ready(desc_ready), .desc_data(desc_data),
        .res_valid(res_valid), .res_ready(res_ready), .res_data(res_data),
        .m_axi_arvalid(m_axi_arvalid), .m_axi_arready(arready_core),
        .m_axi_araddr(m_axi_araddr), .m_axi_arlen(m_axi_arlen), .m_axi_arsize(m_axi_arsize),
        .m_axi_arburst(m_axi_arburst),
        .m_axi_rvalid(rvalid), .m_axi_rready(rready), .m_axi_rdata(rdata),
        .m_axi_rresp(rresp), .m_axi_rlast(rlast),
        .dbg_req(dbg_req), .dbg_heads(dbg_heads), .dbg_n(dbg_n), .dbg_valid(dbg_valid),
        .dbg_ready(dbg_ready), .dbg_imp(dbg_imp), .dbg_kept(dbg_kept), .dbg_last(dbg_last)
    );

    genvar ch;
    assign tb_ar_ready = arready_core;  // the responder's arready where a burst has room

    generate
        for (ch = 0; ch < N_CH; ch = ch + 1) begin : g_ch
            axi_r_playout #(.DW(AXI_DW), .CH(ch)) u_playout (
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
                .rdata(rdata[AXI_DW*ch +: AXI_DW]), .rresp(rresp[2*ch +: 2]),
                .rlast(rlast[ch]),
                .done(tb_r_done[16*ch +: 16]), .first(tb_r_first[32*ch +: 32]),
                .log(tb_r_log[512*ch +: 512])
            );
        end
    endgenerate
endmodule
