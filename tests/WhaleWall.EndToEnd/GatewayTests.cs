using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.TestSupport.TestNet;

namespace WhaleWall.EndToEnd;

[CollectionDefinition(Name)]
public sealed class GatewayCollection : ICollectionFixture<GatewayFixture>
{
    public const string Name = "gateway";
}

/// <summary>A daemon of its own in deny-by-default mode (GATEWAY_NETWORKS), with its own dockerd,
/// so the other suites' containers are not under it.</summary>
public sealed class GatewayFixture : IAsyncLifetime
{
    public const string GatewayNetwork = "gw";
    public const string DefaultOutbound = "_dns_,198.19.0.11";

    public E2eFixture Inner { get; } = new(withDns: false);

    public async Task InitializeAsync()
    {
        await Inner.InitializeAsync();
        await Inner.Harness.CreateNetworkAsync(GatewayNetwork);
        Inner.Harness.InternetUdpServer(Dns, 53);
        Inner.Daemon.ExtraEnvironment["GATEWAY_NETWORKS"] = GatewayNetwork;
        Inner.Daemon.ExtraEnvironment["DEFAULT_OUTBOUND"] = DefaultOutbound;
        // these suites prove `_dns_`'s own meaning (port 53 to the container's resolvers, a UDP
        // echo standing in for the resolver), which holds with the DNS proxy off; under the
        // proxy every port-53 packet goes to the proxy instead (DnsProxyTests)
        Inner.Daemon.ExtraEnvironment["WHALEWALL_DNS_PROXY"] = "off";
        await Inner.EnsureDaemonAsync();
    }

    public Task DisposeAsync() => Inner.DisposeAsync();
}

/// <summary>Issue 4: dockerwall's deny-by-default mode, with real packets.</summary>
[Collection(GatewayCollection.Name)]
public sealed class GatewayTests(GatewayFixture gfx, ITestOutputHelper output)
{
    private E2eFixture fx => gfx.Inner;
    private DockerHarness H => fx.Harness;

    private Task<(TestContainer C, string Ns, string Ip)> Started(string hint, string network, Dictionary<string, string>? labels = null, bool managed = true) =>
        fx.StartedAsync(hint, new ContainerOptions { Network = network, Labels = labels ?? [] }, managed);

    [Fact]
    public Task Unlabeled_container_on_a_gateway_network_gets_the_default_outbound_and_its_neighbours_only() => fx.Run(output, async () =>
    {
        var a = await Started("gw-a", GatewayFixture.GatewayNetwork);
        var b = await Started("gw-b", GatewayFixture.GatewayNetwork);
        using var inB = await b.C.ListenTcpAsync(7000);
        using var inA = await a.C.ListenTcpAsync(7001);

        await fx.AssertUdpAllowed(a.Ns, Dns, 53, what: "(_dns_: the container's resolver)");
        await fx.AssertTcpAllowed(a.Ns, Server2, TcpPort, what: "(DEFAULT_OUTBOUND address)");
        await fx.AssertTcpAllowed(a.Ns, b.Ip, 7000, what: "(neighbour on the gateway network)");
        await fx.AssertTcpAllowed(b.Ns, a.Ip, 7001, what: "(neighbour, other direction)");
        await E2eFixture.All(
            () => fx.AssertTcpDropped(a.Ns, Server1, TcpPort, what: "(not in DEFAULT_OUTBOUND)"),
            () => fx.AssertUdpDropped(a.Ns, Server1, UdpPort, what: "(udp elsewhere)"));
        await a.C.RemoveAsync();
        await b.C.RemoveAsync();
    });

    [Fact]
    public Task Containers_on_other_networks_are_left_alone() => fx.Run(output, async () =>
    {
        var other = await Started("other", "bridge", managed: false);
        await Task.Delay(300);
        Assert.False(fx.Table.IsManaged(other.Ip));
        await fx.AssertTcpAllowed(other.Ns, Server1, TcpPort, what: "(not on a gateway network)");
        await other.C.RemoveAsync();
    });

    [Fact]
    public Task Dockerwall_label_replaces_the_default_outbound() => fx.Run(output, async () =>
    {
        var c = await Started("gw-labelled", GatewayFixture.GatewayNetwork, new() { ["dockerwall.outbound"] = Server1 });
        await fx.AssertTcpAllowed(c.Ns, Server1, TcpPort, what: "(from dockerwall.outbound)");
        fx.AssertTcpDropped(c.Ns, Server2, TcpPort, what: "(DEFAULT_OUTBOUND no longer applies)");
        await c.C.RemoveAsync();
    });
}
