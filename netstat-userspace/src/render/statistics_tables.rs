//! net-tools' sentence tables for `netstat -s`, in net-tools' own order
//! (statistics.rs explains why the order matters). A single table: one
//! entry per counter.

use super::statistics::Kind::{
    self, InHistogram as In, Number as N, Optional as O, OutHistogram as Out, Static as S,
};

/// (counter name, sentence with `{}` for the value, kind)
pub type CounterFormat = (&'static str, &'static str, Kind);

pub const IP: &[CounterFormat] = &[
    ("DefaultTTL", "", S),
    ("Forwarding", "", S),
    ("ForwDatagrams", "{} forwarded", N),
    ("FragCreates", "{} fragments created", O),
    ("FragFails", "{} outgoing packets failed fragmentation", O),
    ("FragOKs", "{} outgoing packets fragmented ok", O),
    ("InAddrErrors", "{} with invalid addresses", O),
    ("InDelivers", "{} incoming packets delivered", N),
    ("InDiscards", "{} incoming packets discarded", N),
    ("InHdrErrors", "{} with invalid headers", O),
    ("InReceives", "{} total packets received", N),
    ("InUnknownProtos", "{} with unknown protocol", O),
    ("OutDiscards", "{} outgoing packets dropped", O),
    ("OutNoRoutes", "{} dropped because of missing route", O),
    ("OutRequests", "{} requests sent out", N),
    ("ReasmFails", "{} packet reassemblies failed", O),
    ("ReasmOKs", "{} packets reassembled ok", O),
    ("ReasmReqds", "{} reassemblies required", O),
    ("ReasmTimeout", "{} fragments dropped after timeout", O),
];

pub const IP6: &[CounterFormat] = &[
    ("Ip6FragCreates", "{} fragments created", O),
    (
        "Ip6FragFails",
        "{} outgoing packets failed fragmentation",
        O,
    ),
    ("Ip6FragOKs", "{} outgoing packets fragmented ok", O),
    ("Ip6InAddrErrors", "{} with invalid addresses", O),
    ("Ip6InDelivers", "{} incoming packets delivered", N),
    ("Ip6InDiscards", "{} incoming packets discarded", N),
    ("Ip6InHdrErrors", "{} with invalid headers", O),
    ("Ip6InMcastPkts", "{} incoming multicast packets", O),
    ("Ip6InNoRoutes", "{} incoming packets with no route", O),
    ("Ip6InReceives", "{} total packets received", N),
    ("Ip6InTooBigErrors", "{} with packets too big", O),
    ("Ip6InTruncatedPkts", "{} with truncated packets", O),
    ("Ip6InUnknownProtos", "{} with unknown protocol", O),
    ("Ip6OutDiscards", "{} outgoing packets dropped", O),
    ("Ip6OutForwDatagrams", "{} forwarded", N),
    ("Ip6OutMcastPkts", "{} outgoing multicast packets", O),
    ("Ip6OutNoRoutes", "{} dropped because of missing route", O),
    ("Ip6OutRequests", "{} requests sent out", N),
    ("Ip6ReasmFails", "{} packet reassemblies failed", O),
    ("Ip6ReasmOKs", "{} packets reassembled ok", O),
    ("Ip6ReasmReqds", "{} reassemblies required", O),
    ("Ip6ReasmTimeout", "{} fragments dropped after timeout", O),
];

pub const ICMP: &[CounterFormat] = &[
    ("InAddrMaskReps", "address mask replies: {}", In),
    ("InAddrMasks", "address mask request: {}", In),
    ("InDestUnreachs", "destination unreachable: {}", In),
    ("InEchoReps", "echo replies: {}", In),
    ("InEchos", "echo requests: {}", In),
    ("InErrors", "{} input ICMP message failed", N),
    ("InMsgs", "{} ICMP messages received", N),
    ("InParmProbs", "wrong parameters: {}", In),
    ("InRedirects", "redirects: {}", In),
    ("InSrcQuenchs", "source quenches: {}", In),
    ("InTimeExcds", "timeout in transit: {}", In),
    ("InTimestampReps", "timestamp reply: {}", In),
    ("InTimestamps", "timestamp request: {}", In),
    ("OutAddrMaskReps", "address mask replies: {}", Out),
    ("OutAddrMasks", "address mask requests: {}", Out),
    ("OutDestUnreachs", "destination unreachable: {}", Out),
    ("OutEchoReps", "echo replies: {}", Out),
    ("OutEchos", "echo requests: {}", Out),
    ("OutErrors", "{} ICMP messages failed", N),
    ("OutMsgs", "{} ICMP messages sent", N),
    ("OutParmProbs", "wrong parameters: {}", Out),
    ("OutRedirects", "redirect: {}", Out),
    ("OutSrcQuenchs", "source quench: {}", Out),
    ("OutTimeExcds", "time exceeded: {}", Out),
    ("OutTimestampReps", "timestamp replies: {}", Out),
    ("OutTimestamps", "timestamp requests: {}", Out),
];

pub const ICMP6: &[CounterFormat] = &[
    ("Icmp6InDestUnreachs", "destination unreachable: {}", In),
    ("Icmp6InEchoReplies", "echo replies: {}", In),
    ("Icmp6InEchos", "echo requests: {}", In),
    ("Icmp6InErrors", "{} input ICMP message failed", N),
    ("Icmp6InGroupMembQueries", "group member queries: {}", In),
    (
        "Icmp6InGroupMembReductions",
        "group member reductions: {}",
        In,
    ),
    (
        "Icmp6InGroupMembResponses",
        "group member responses: {}",
        In,
    ),
    ("Icmp6InMsgs", "{} ICMP messages received", N),
    (
        "Icmp6InNeighborAdvertisements",
        "neighbour advertisement: {}",
        In,
    ),
    ("Icmp6InNeighborSolicits", "neighbour solicits: {}", In),
    ("Icmp6InParmProblems", "parameter problem: {}", In),
    ("Icmp6InPktTooBigs", "packets too big: {}", In),
    ("Icmp6InRedirects", "redirects: {}", In),
    (
        "Icmp6InRouterAdvertisements",
        "router advertisement: {}",
        In,
    ),
    ("Icmp6InRouterSolicits", "router solicits: {}", In),
    ("Icmp6InTimeExcds", "received ICMPv6 time exceeded: {}", In),
    ("Icmp6OutDestUnreachs", "destination unreachable: {}", Out),
    ("Icmp6OutEchoReplies", "echo replies: {}", Out),
    ("Icmp6OutEchos", "echo requests: {}", Out),
    ("Icmp6OutGroupMembQueries", "group member queries: {}", Out),
    (
        "Icmp6OutGroupMembReductions",
        "group member reductions: {}",
        Out,
    ),
    (
        "Icmp6OutGroupMembResponses",
        "group member responses: {}",
        Out,
    ),
    ("Icmp6OutMsgs", "{} ICMP messages sent", N),
    (
        "Icmp6OutNeighborAdvertisements",
        "neighbor advertisements: {}",
        Out,
    ),
    ("Icmp6OutNeighborSolicits", "neighbor solicits: {}", Out),
    ("Icmp6OutParmProblems", "parameter problem: {}", Out),
    ("Icmp6OutPktTooBigs", "packets too big: {}", Out),
    ("Icmp6OutRedirects", "redirects: {}", Out),
    // netstat's key has a trailing blank, so this sentence is never used.
    (
        "Icmp6OutRouterAdvertisements ",
        "router advertisement: {}",
        Out,
    ),
    ("Icmp6OutRouterSolicits", "router solicits: {}", Out),
    ("Icmp6OutTimeExcds", "sent ICMPv6 time exceeded: {}", Out),
];

pub const TCP: &[CounterFormat] = &[
    ("ActiveOpens", "{} active connection openings", N),
    ("AttemptFails", "{} failed connection attempts", N),
    ("CurrEstab", "{} connections established", N),
    ("EstabResets", "{} connection resets received", N),
    ("InErrs", "{} bad segments received", N),
    ("InSegs", "{} segments received", N),
    ("MaxConn", "", N),
    ("OutRsts", "{} resets sent", N),
    ("OutSegs", "{} segments sent out", N),
    ("PassiveOpens", "{} passive connection openings", N),
    ("RetransSegs", "{} segments retransmitted", N),
    ("RtoAlgorithm", "", S),
    ("RtoMax", "", N),
    ("RtoMin", "", N),
];

pub const UDP: &[CounterFormat] = &[
    ("InDatagrams", "{} packets received", N),
    ("InErrors", "{} packet receive errors", N),
    ("NoPorts", "{} packets to unknown port received", N),
    ("OutDatagrams", "{} packets sent", N),
    ("RcvbufErrors", "{} receive buffer errors", N),
    ("SndbufErrors", "{} send buffer errors", N),
];

pub const UDP6: &[CounterFormat] = &[
    ("Udp6InDatagrams", "{} packets received", N),
    ("Udp6InErrors", "{} packet receive errors", N),
    ("Udp6NoPorts", "{} packets to unknown port received", N),
    ("Udp6OutDatagrams", "{} packets sent", N),
];

pub const TCP_EXT: &[CounterFormat] = &[
    (
        "DelayedACKLocked",
        "{} delayed acks further delayed because of locked socket",
        O,
    ),
    ("DelayedACKLost", "Quick ack mode was activated {} times", O),
    ("DelayedACKs", "{} delayed acks sent", O),
    (
        "EmbryonicRsts",
        "{} resets received for embryonic SYN_RECV sockets",
        O,
    ),
    ("ListenDrops", "{} SYNs to LISTEN sockets dropped", O),
    (
        "ListenOverflows",
        "{} times the listen queue of a socket overflowed",
        O,
    ),
    (
        "LockDroppedIcmps",
        "{} ICMP packets dropped because socket was locked",
        O,
    ),
    (
        "OfoPruned",
        "{} packets dropped from out-of-order queue because of socket buffer overrun",
        O,
    ),
    (
        "OutOfWindowIcmps",
        "{} ICMP packets dropped because they were out-of-window",
        O,
    ),
    (
        "PAWSActive",
        "{} active connections rejected because of time stamp",
        O,
    ),
    (
        "PAWSEstab",
        "{} packets rejected in established connections because of timestamp",
        O,
    ),
    (
        "PAWSPassive",
        "{} passive connections rejected because of time stamp",
        O,
    ),
    (
        "PruneCalled",
        "{} packets pruned from receive queue because of socket buffer overrun",
        O,
    ),
    ("RcvPruned", "{} packets pruned from receive queue", O),
    (
        "SockMallocOOM",
        "Ran {} times out of system memory during packet sending",
        O,
    ),
    ("SyncookiesFailed", "{} invalid SYN cookies received", O),
    ("SyncookiesRecv", "{} SYN cookies received", O),
    ("SyncookiesSent", "{} SYN cookies sent", O),
    (
        "TCPAbortFailed",
        "{} times unable to send RST due to no memory",
        O,
    ),
    (
        "TCPAbortOnClose",
        "{} connections reset due to early user close",
        O,
    ),
    (
        "TCPAbortOnData",
        "{} connections reset due to unexpected data",
        O,
    ),
    (
        "TCPAbortOnLinger",
        "{} connections aborted after user close in linger timeout",
        O,
    ),
    (
        "TCPAbortOnMemory",
        "{} connections aborted due to memory pressure",
        O,
    ),
    (
        "TCPAbortOnSyn",
        "{} connections reset due to unexpected SYN",
        O,
    ),
    (
        "TCPAbortOnTimeout",
        "{} connections aborted due to timeout",
        O,
    ),
    (
        "TCPDirectCopyFromBacklog",
        "{} bytes directly in process context from backlog",
        O,
    ),
    (
        "TCPDirectCopyFromPrequeue",
        "{} bytes directly received in process context from prequeue",
        O,
    ),
    (
        "TCPDSACKOfoRecv",
        "{} DSACKs for out of order packets received",
        O,
    ),
    (
        "TCPDSACKOfoSent",
        "{} DSACKs sent for out of order packets",
        O,
    ),
    ("TCPDSACKOldSent", "{} DSACKs sent for old packets", O),
    ("TCPDSACKRecv", "{} DSACKs received", O),
    (
        "TCPDSackUndo",
        "{} congestion window recovered without slow start using DSACK",
        O,
    ),
    (
        "TCPDSACKUndo",
        "{} congestion windows recovered without slow start by DSACK",
        O,
    ),
    (
        "TCPFACKReorder",
        "Detected reordering {} times using FACK",
        O,
    ),
    ("TCPFastRetrans", "{} fast retransmits", O),
    ("TCPForwardRetrans", "{} forward retransmits", O),
    (
        "TCPFullUndo",
        "{} congestion windows fully recovered without slow start",
        O,
    ),
    ("TCPHPAcks", "{} predicted acknowledgments", O),
    ("TCPHPHits", "{} packet headers predicted", N),
    (
        "TCPHPHitsToUser",
        "{} packet headers predicted and directly queued to user",
        O,
    ),
    ("TCPLossFailures", "{} timeouts in loss state", O),
    ("TCPLoss", "{} TCP data loss events", O),
    (
        "TCPLossUndo",
        "{} congestion windows recovered without slow start after partial ack",
        O,
    ),
    ("TCPLostRetransmits", "{} retransmits lost", O),
    ("TCPMemoryPressures", "TCP ran low on memory {} times", O),
    (
        "TCPPartialUndo",
        "{} congestion windows partially recovered using Hoe heuristic",
        O,
    ),
    (
        "TCPPrequeued",
        "{} packets directly queued to recvmsg prequeue",
        O,
    ),
    ("TCPPrequeueDropped", "{} packets dropped from prequeue", O),
    (
        "TCPPureAcks",
        "{} acknowledgments not containing data payload received",
        O,
    ),
    (
        "TCPRcvCollapsed",
        "{} packets collapsed in receive queue due to low socket buffer",
        O,
    ),
    (
        "TCPRenoFailures",
        "{} timeouts after reno fast retransmit",
        O,
    ),
    (
        "TCPRenoRecoveryFailed",
        "{} reno fast retransmits failed",
        O,
    ),
    (
        "TCPRenoRecoveryFail",
        "{} classic Reno fast retransmits failed",
        O,
    ),
    (
        "TCPRenoRecovery",
        "{} times recovered from packet loss due to fast retransmit",
        O,
    ),
    (
        "TCPRenoReorder",
        "Detected reordering {} times using reno fast retransmit",
        O,
    ),
    ("TCPSackFailures", "{} timeouts after SACK recovery", O),
    ("TCPSackRecoveryFail", "{} SACK retransmits failed", O),
    (
        "TCPSackRecovery",
        "{} times recovered from packet loss by selective acknowledgements",
        O,
    ),
    ("TCPSACKReneging", "{} bad SACK blocks received", O),
    (
        "TCPSACKReorder",
        "Detected reordering {} times using SACK",
        O,
    ),
    (
        "TCPSchedulerFailed",
        "{} times receiver scheduled too late for direct processing",
        O,
    ),
    ("TCPSlowStartRetrans", "{} retransmits in slow start", O),
    ("TCPTimeouts", "{} other TCP timeouts", O),
    (
        "TCPTSReorder",
        "Detected reordering {} times using time stamp",
        O,
    ),
    (
        "TWKilled",
        "{} TCP sockets finished time wait in slow timer",
        O,
    ),
    ("TW", "{} TCP sockets finished time wait in fast timer", O),
    (
        "TWRecycled",
        "{} time wait sockets recycled by time stamp",
        O,
    ),
];
