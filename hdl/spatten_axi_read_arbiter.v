// AXI4 read arbiter: two read masters (the core's V and K fetchers) share N_CH read channels.
// docs/architecture.md section 2.2 (fetch), issue 10 (job overlap).
//
// Why: with job overlap the V fetch of job i runs while the K fetch of job i+1 starts, so two
// spatten_fetcher instances drive the core's one set of external AXI4 read channels. The
// channels carry no IDs: per channel, R bursts return in AR order. So the arbiter only has to
// remember, per channel, which master each accepted burst belongs to, in order.
//
// Every channel c is arbitrated on its own (channel c of each bus is bits [c*W +: W]):
//   AR  The granted master's request is forwarded combinationally (zero added latency):
//       m_axi_arvalid[c] = granted master's arvalid[c] while c's order FIFO has room, payload
//       (araddr/arlen/arsize/arburst) muxed from the granted master; that master's arready[c] =
//       m_axi_arready[c] && room, the other master's arready[c] = 0.
//       Grant: master 0 (s0_*, the V fetcher of the OLDER job) has priority: s0 is granted when
//       s0_arvalid[c] is high, s1 otherwise.
//       Lock (AXI rule: once ARVALID is high, it and the payload stay until the handshake): if
//       m_axi_arvalid[c] is high at an edge without the handshake, the granted master stays
//       granted (g_ch[c].lock_on / lock_id) until its handshake. Without it, s0 raising arvalid
//       while s1's request waits would change the payload under a pending ARVALID. The lock is
//       released at the handshake, or when the locked master withdraws its request (arvalid
//       low: spatten_fetcher abandons an unissued burst after an error response); a
//       withdrawal then shows as m_axi_arvalid[c] falling for one cycle, exactly as the
//       fetcher alone would drive it, and nothing is recorded for it.
//       Order FIFO: every AR handshake on c pushes the granted master's id (1 bit) into c's
//       FIFO of MAX_OUTSTANDING entries; while it is full m_axi_arvalid[c] and both
//       arready[c] are 0 (back-pressure). A FIFO only fills at a handshake, so a full FIFO never
//       withdraws a pending ARVALID.
//   R   Channel c's beats belong to the master at the head of c's FIFO (the owner): the owner's
//       rvalid[c] = m_axi_rvalid[c] && FIFO not empty, the other master's rvalid[c] = 0;
//       rdata/rresp/rlast go to both masters (only the owner sees rvalid); m_axi_rready[c] =
//       owner's rready[c] (0 while the FIFO is empty). The beat with rlast (handshake) pops.
//       Bursts of the two masters may interleave on a channel in any AR order: the FIFO routes
//       each one to its master.
// Zero latency both ways: no register on any AR or R path, so with one master active the core's
// timing is that of the fetcher wired straight to the channels. No combinational loop as long
// as each master's arvalid does not depend on its arready and the slave's rvalid not on rready
// (both AXI rules; arready may depend on arvalid, rready on rvalid).
// Deadlock: a channel delivers only its head burst (head-of-line), so each master must take its
// R bursts in the order its ARs were accepted (spatten_fetcher does: one AR at a time, beats
// taken in issue order) and must never stop taking beats while waiting for the OTHER master's
// progress; then a channel's head always belongs to a master that drains it.
// Reset: rst_n low at a rising edge (synchronous) empties the FIFOs and clears the locks.
// Parameters: MAX_OUTSTANDING >= 1 bursts per channel (both masters together; with two
// spatten_fetchers of MAX_OUTSTANDING 8 each, 16 never back-pressures).
module spatten_axi_read_arbiter #(
    parameter integer AW              = 32,
    parameter integer DW              = 256,
    parameter integer N_CH            = 1,
    parameter integer MAX_OUTSTANDING = 16
) (
    input  wire                 clk,
    input  wire                 rst_n,
    // master 0 (priority): AXI4 read address channels, flattened per channel
    input  wire [N_CH-1:0]      s0_arvalid,
    output wire [N_CH-1:0]      s0_arready,
    input  wire [N_CH*AW-1:0]   s0_araddr,
    input  wire [N_CH*8-1:0]    s0_arlen,
    input  wire [N_CH*3-1:0]    s0_arsize,
    input  wire [N_CH*2-1:0]    s0_arburst,
    // master 0: read data channels
    output wire [N_CH-1:0]      s0_rvalid,
    input  wire [N_CH-1:0]      s0_rready,
    output wire [N_CH*DW-1:0]   s0_rdata,
    output wire [N_CH*2-1:0]    s0_rresp,
    output wire [N_CH-1:0]      s0_rlast,
    // master 1: read address channels
    input  wire [N_CH-1:0]      s1_arvalid,
    output wire [N_CH-1:0]      s1_arready,
    input  wire [N_CH*AW-1:0]   s1_araddr,
    input  wire [N_CH*8-1:0]    s1_arlen,
    input  wire [N_CH*3-1:0]    s1_arsize,
    input  wire [N_CH*2-1:0]    s1_arburst,
    // master 1: read data channels
    output wire [N_CH-1:0]      s1_rvalid,
    input  wire [N_CH-1:0]      s1_rready,
    output wire [N_CH*DW-1:0]   s1_rdata,
    output wire [N_CH*2-1:0]    s1_rresp,
    output wire [N_CH-1:0]      s1_rlast,
    // external AXI4 read address channels
    output wire [N_CH-1:0]      m_axi_arvalid,
    input  wire [N_CH-1:0]      m_axi_arready,
    output wire [N_CH*AW-1:0]   m_axi_araddr,
    output wire [N_CH*8-1:0]    m_axi_arlen,
    output wire [N_CH*3-1:0]    m_axi_arsize,
    output wire [N_CH*2-1:0]    m_axi_arburst,
    // external AXI4 read data channels
    input  wire [N_CH-1:0]      m_axi_rvalid,
    output wire [N_CH-1:0]      m_axi_rready,
    input  wire [N_CH*DW-1:0]   m_axi_rdata,
    input  wire [N_CH*2-1:0]    m_axi_rresp,
    input  wire [N_CH-1:0]      m_axi_rlast
);
    localparam integer PB = (MAX_OUTSTANDING > 1) ? $clog2(MAX_OUTSTANDING) : 1;  // FIFO index
    localparam integer CB = $clog2(MAX_OUTSTANDING + 1);                          // FIFO count
    localparam integer LAST_I = MAX_OUTSTANDING - 1;
    localparam [PB-1:0] LAST  = LAST_I[PB-1:0];
    localparam [CB-1:0] DEPTH = MAX_OUTSTANDING[CB-1:0];

    generate
        if (MAX_OUTSTANDING < 1) begin : unsupported
            spatten_axi_read_arbiter_unsupported_parameters max_outstanding_must_be_positive ();
        end
    endgenerate

    // R data goes to both masters; rvalid tells the owner.
    assign s0_rdata = m_axi_rdata;
    assign s1_rdata = m_axi_rdata;
    assign s0_rresp = m_axi_rresp;
    assign s1_rresp = m_axi_rresp;
    assign s0_rlast = m_axi_rlast;
    assign s1_rlast = m_axi_rlast;

    genvar c;
    generate
        for (c = 0; c < N_CH; c = c + 1) begin : g_ch
            // ---------------------------------------------------------------- AR
            reg           lock_on;   // a forwarded request is waiting: keep its master granted
            reg           lock_id;   // the locked master (0 = s0, 1 = s1)
            reg [MAX_OUTSTANDING-1:0] ord_q;   // order FIFO: master id of each burst in flight
            reg [PB-1:0]  ord_wr;
            reg [PB-1:0]  ord_rd;
            reg [CB-1:0]  ord_cnt;
            wire          room  = (ord_cnt != DEPTH);
            wire          gnt   = lock_on ? lock_id : !s0_arvalid[c];  // 0 = s0, 1 = s1
            wire          gnt_v = gnt ? s1_arvalid[c] : s0_arvalid[c];

            assign m_axi_arvalid[c]        = gnt_v && room;
            assign m_axi_araddr[c*AW +: AW] = gnt ? s1_araddr[c*AW +: AW] : s0_araddr[c*AW +: AW];
            assign m_axi_arlen[c*8 +: 8]   = gnt ? s1_arlen[c*8 +: 8]     : s0_arlen[c*8 +: 8];
            assign m_axi_arsize[c*3 +: 3]  = gnt ? s1_arsize[c*3 +: 3]    : s0_arsize[c*3 +: 3];
            assign m_axi_arburst[c*2 +: 2] = gnt ? s1_arburst[c*2 +: 2]   : s0_arburst[c*2 +: 2];
            assign s0_arready[c]           = !gnt && m_axi_arready[c] && room;
            assign s1_arready[c]           = gnt && m_axi_arready[c] && room;
            wire          ar_fire = m_axi_arvalid[c] && m_axi_arready[c];

            // ---------------------------------------------------------------- R
            wire          owned = (ord_cnt != {CB{1'b0}});
            wire          owner = ord_q[ord_rd];
            assign s0_rvalid[c]   = m_axi_rvalid[c] && owned && !owner;
            assign s1_rvalid[c]   = m_axi_rvalid[c] && owned && owner;
            assign m_axi_rready[c] = owned && (owner ? s1_rready[c] : s0_rready[c]);
            wire          r_pop = m_axi_rvalid[c] && m_axi_rready[c] && m_axi_rlast[c];

            always @(posedge clk) begin
                if (!rst_n) begin
                    lock_on <= 1'b0;
                    lock_id <= 1'b0;
                    ord_q   <= {MAX_OUTSTANDING{1'b0}};
                    ord_wr  <= {PB{1'b0}};
                    ord_rd  <= {PB{1'b0}};
                    ord_cnt <= {CB{1'b0}};
                end else begin
                    // Lock while a forwarded request waits; a handshake or a withdrawal ends it.
                    lock_on <= m_axi_arvalid[c] && !m_axi_arready[c];
                    lock_id <= gnt;
                    if (ar_fire) begin
                        ord_q[ord_wr] <= gnt;
                        ord_wr <= (ord_wr == LAST) ? {PB{1'b0}} : ord_wr + 1'b1;
                    end
                    if (r_pop) begin
                        ord_rd <= (ord_rd == LAST) ? {PB{1'b0}} : ord_rd + 1'b1;
                    end
                    case ({ar_fire, r_pop})
                        2'b10:   ord_cnt <= ord_cnt + 1'b1;
                        2'b01:   ord_cnt <= ord_cnt - 1'b1;
                        default: ;
                    endcase
                end
            end
        end
    endgenerate
endmodule
