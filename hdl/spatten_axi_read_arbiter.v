// TEMPORARY (lead's stand-in until the helper's block lands)
module spatten_axi_read_arbiter #(
    parameter integer AW = 32, parameter integer DW = 256, parameter integer N_CH = 1,
    parameter integer MAX_OUTSTANDING = 16
) (
    input wire clk, input wire rst_n,
    input wire [N_CH-1:0] s0_arvalid, output wire [N_CH-1:0] s0_arready,
    input wire [N_CH*AW-1:0] s0_araddr, input wire [N_CH*8-1:0] s0_arlen,
    input wire [N_CH*3-1:0] s0_arsize, input wire [N_CH*2-1:0] s0_arburst,
    output wire [N_CH-1:0] s0_rvalid, input wire [N_CH-1:0] s0_rready,
    output wire [N_CH*DW-1:0] s0_rdata, output wire [N_CH*2-1:0] s0_rresp,
    output wire [N_CH-1:0] s0_rlast,
    input wire [N_CH-1:0] s1_arvalid, output wire [N_CH-1:0] s1_arready,
    input wire [N_CH*AW-1:0] s1_araddr, input wire [N_CH*8-1:0] s1_arlen,
    input wire [N_CH*3-1:0] s1_arsize, input wire [N_CH*2-1:0] s1_arburst,
    output wire [N_CH-1:0] s1_rvalid, input wire [N_CH-1:0] s1_rready,
    output wire [N_CH*DW-1:0] s1_rdata, output wire [N_CH*2-1:0] s1_rresp,
    output wire [N_CH-1:0] s1_rlast,
    output wire [N_CH-1:0] m_axi_arvalid, input wire [N_CH-1:0] m_axi_arready,
    output wire [N_CH*AW-1:0] m_axi_araddr, output wire [N_CH*8-1:0] m_axi_arlen,
    output wire [N_CH*3-1:0] m_axi_arsize, output wire [N_CH*2-1:0] m_axi_arburst,
    input wire [N_CH-1:0] m_axi_rvalid, output wire [N_CH-1:0] m_axi_rready,
    input wire [N_CH*DW-1:0] m_axi_rdata, input wire [N_CH*2-1:0] m_axi_rresp,
    input wire [N_CH-1:0] m_axi_rlast
);
    localparam integer QB = $clog2(MAX_OUTSTANDING);
    assign s0_rdata = m_axi_rdata; assign s1_rdata = m_axi_rdata;
    assign s0_rresp = m_axi_rresp; assign s1_rresp = m_axi_rresp;
    assign s0_rlast = m_axi_rlast; assign s1_rlast = m_axi_rlast;
    genvar c;
    generate for (c = 0; c < N_CH; c = c + 1) begin : g_ch
        reg [MAX_OUTSTANDING-1:0] q;
        reg [QB:0] wr, rd;
        reg locked, lock_m;
        wire [QB:0] used = wr - rd;
        wire room = (used != MAX_OUTSTANDING[QB:0]);
        wire empty = (wr == rd);
        wire g1 = locked ? lock_m : !s0_arvalid[c];
        wire own = q[rd[QB-1:0]];
        assign m_axi_arvalid[c] = room && (g1 ? s1_arvalid[c] : s0_arvalid[c]);
        assign m_axi_araddr[c*AW +: AW] = g1 ? s1_araddr[c*AW +: AW] : s0_araddr[c*AW +: AW];
        assign m_axi_arlen[c*8 +: 8] = g1 ? s1_arlen[c*8 +: 8] : s0_arlen[c*8 +: 8];
        assign m_axi_arsize[c*3 +: 3] = g1 ? s1_arsize[c*3 +: 3] : s0_arsize[c*3 +: 3];
        assign m_axi_arburst[c*2 +: 2] = g1 ? s1_arburst[c*2 +: 2] : s0_arburst[c*2 +: 2];
        assign s0_arready[c] = room && !g1 && m_axi_arready[c];
        assign s1_arready[c] = room && g1 && m_axi_arready[c];
        assign s0_rvalid[c] = !empty && !own && m_axi_rvalid[c];
        assign s1_rvalid[c] = !empty && own && m_axi_rvalid[c];
        assign m_axi_rready[c] = !empty && (own ? s1_rready[c] : s0_rready[c]);
        always @(posedge clk) begin
            if (!rst_n) begin wr <= 0; rd <= 0; locked <= 0; lock_m <= 0; end
            else begin
                if (m_axi_arvalid[c] && m_axi_arready[c]) begin
                    q[wr[QB-1:0]] <= g1; wr <= wr + 1'b1; locked <= 1'b0;
                end else if (m_axi_arvalid[c]) begin locked <= 1'b1; lock_m <= g1; end
                if (m_axi_rvalid[c] && m_axi_rready[c] && m_axi_rlast[c]) rd <= rd + 1'b1;
            end
        end
    end endgenerate
endmodule
