using WhaleWall.TestSupport;
using Xunit;

namespace WhaleWall.KernelTests;

/// <summary>The end-to-end probe that asks whether a connection's first SYN got through
/// (<see cref="FirstSyn"/>) can tell: a first SYN the router drops shows as a retransmission even
/// though the connection then succeeds, and a clean handshake shows none.</summary>
public sealed class FirstSynTests
{
    private const int Port = 8080;

    [Fact]
    public void A_dropped_first_syn_shows_as_a_retransmission_and_a_clean_handshake_as_none()
    {
        using var lab = new KernelLab();
        using var server = TcpServer.Start(lab.ServerNs, KernelLab.ServerIp4, Port);
        var clean = FirstSyn.Connect(lab.ClientNs, KernelLab.ServerIp4, Port);
        Assert.True(clean.FirstTry, clean.ToString());

        lab.Exec(lab.RouterName, "nft", "add table inet firstsyn");
        lab.Exec(lab.RouterName, "nft", "add chain inet firstsyn probe { type filter hook forward priority 0; }");
        lab.Exec(lab.RouterName, "nft", $"add rule inet firstsyn probe tcp dport {Port} tcp flags syn drop");
        var connecting = Task.Run(() => FirstSyn.Connect(lab.ClientNs, KernelLab.ServerIp4, Port));
        Thread.Sleep(300);
        lab.Exec(lab.RouterName, "nft", "delete table inet firstsyn");
        var late = connecting.GetAwaiter().GetResult();
        Assert.Equal(ProbeOutcome.Connected, late.Probe);
        Assert.False(late.FirstTry, late.ToString());
        Assert.True(late.Retransmitted >= 1, late.ToString());
    }
}
