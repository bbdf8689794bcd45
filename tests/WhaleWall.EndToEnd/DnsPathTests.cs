using System.Text.Json.Nodes;
using WhaleWall.Firewall.Kernel;
using WhaleWall.Firewall.Nft;
using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace WhaleWall.EndToEnd;

/// <summary>
/// Where a container's DNS queries go, with a real dockerd (no WhaleWall daemon): on the default
/// bridge the container asks its resolv.conf servers directly; on a user-defined network it asks
/// Docker's embedded resolver at 127.0.0.11, which forwards to the upstreams FROM INSIDE the
/// container's network namespace, with the container's own address as source. Both paths cross
/// the host's prerouting hook, so the proxy's redirect (<see cref="DnsProxyLayout"/>) catches both
/// and the source names the container. docs/dns-proxy.md describes this.
/// </summary>
public sealed class DnsPathTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Name = "probe.example.test";
    private const int ProxyPort = 15353;
    private readonly DockerHarness h = new();
    private TestDnsServer dns = null!;

    private static JsonObject Cmd(string verb, string kind, JsonObject body) => new() { [verb] = new JsonObject { [kind] = body } };

    public async Task InitializeAsync()
    {
        h.Log = output.WriteLine;
        await h.InitializeAsync();
        dns = TestDnsServer.Start(h.InternetNsPath, TestNet.Dns);
        dns.Set(Name, 60, TestNet.Server1);
    }

    public async Task DisposeAsync()
    {
        dns?.Dispose();
        await h.DisposeAsync();
    }

    [Fact]
    public async Task Default_bridge_and_embedded_resolver_queries_both_leave_with_the_containers_address_and_are_redirected()
    {
        var userNet = await h.CreateNetworkAsync("wwdnspath");
        var onBridge = await h.RunContainerAsync("dnspath-bridge");
        var onUser = await h.RunContainerAsync("dnspath-user", new ContainerOptions { Network = "wwdnspath" });
        var bridgeNs = await onBridge.NsPathAsync();
        var userNs = await onUser.NsPathAsync();
        var bridgeIp = await onBridge.IpAsync();
        var userIp = await onUser.IpAsync("wwdnspath");
        var userGateway = (await h.Docker.Networks.InspectNetworkAsync(userNet)).IPAM.Config[0].Gateway;
        var bridgeGateway = TestNet.DockerBip.Split('/')[0];
        output.WriteLine($"bridge container {bridgeIp} (gateway {bridgeGateway}), user-network container {userIp} (gateway {userGateway})");

        // without any table: both resolve through the test DNS server
        foreach (var tcp in new[] { false, true })
        {
            Assert.Equal([TestNet.Server1], DnsStub.Ask(bridgeNs, TestNet.Dns, 53, Name, tcp)?.Addresses);
            Assert.Equal([TestNet.Server1], DnsStub.Ask(userNs, "127.0.0.11", 53, Name, tcp)?.Addresses);
        }
        foreach (var q in dns.Log) output.WriteLine($"upstream saw {q.Name} over {q.Transport} from {q.From}");
        var seenBefore = dns.QueriesFor(Name);
        Assert.True(seenBefore >= 4);

        // the proxy's rules in a table of this test's own, in the harness' host namespace, and a
        // stand-in proxy on each bridge's gateway address (where `redirect` sends packets)
        var table = "wwdns" + h.RunId.Replace("-", "");
        using var nft = new LibNftables(h.HostNsPath);
        var commands = new List<JsonObject> { Cmd("add", "table", new JsonObject { ["family"] = "inet", ["name"] = table }) };
        commands.AddRange(DnsProxyLayout.Declarations(table));
        commands.Add(Cmd("add", "chain", new JsonObject
        {
            ["family"] = "inet", ["table"] = table, ["name"] = "input",
            ["type"] = "filter", ["hook"] = "input", ["prio"] = NftLayout.Priority, ["policy"] = "accept",
        }));
        commands.AddRange(DnsProxyLayout.Rules(table, ProxyPort));
        commands.Add(DnsProxyLayout.InputRule(table, ProxyPort));
        commands.Add(Cmd("add", "element", new JsonObject
        {
            ["family"] = "inet", ["table"] = table, ["name"] = DnsProxyLayout.Set4, ["elem"] = new JsonArray(bridgeIp, userIp),
        }));
        var result = nft.Run(DnsProxyLayout.Render(commands));
        Assert.True(result.Ok, result.Error);
        using var bridgeStandIn = TestDnsServer.Start(h.HostNsPath, bridgeGateway, ProxyPort);
        using var userStandIn = TestDnsServer.Start(h.HostNsPath, userGateway, ProxyPort);
        bridgeStandIn.Set(Name, 60, TestNet.Server2);
        userStandIn.Set(Name, 60, TestNet.Server2);
        try
        {
            foreach (var tcp in new[] { false, true })
            {
                Assert.Equal([TestNet.Server2], DnsStub.Ask(bridgeNs, TestNet.Dns, 53, Name, tcp)?.Addresses);
                Assert.Equal([TestNet.Server2], DnsStub.Ask(userNs, "127.0.0.11", 53, Name, tcp)?.Addresses);
                // any other address on port 53 ends at the proxy too
                Assert.Equal([TestNet.Server2], DnsStub.Ask(bridgeNs, TestNet.Server1, 53, Name, tcp)?.Addresses);
            }
            foreach (var q in bridgeStandIn.Log.Concat(userStandIn.Log)) output.WriteLine($"proxy saw {q.Name} over {q.Transport} from {q.From}");
            // identity: the proxy sees each container's own address, the embedded resolver's forwards included
            Assert.All(bridgeStandIn.Log, q => Assert.Equal(bridgeIp, ((System.Net.IPEndPoint)q.From).Address.ToString()));
            Assert.All(userStandIn.Log, q => Assert.Equal(userIp, ((System.Net.IPEndPoint)q.From).Address.ToString()));
            Assert.Equal(4, bridgeStandIn.Log.Count);
            Assert.Contains(userStandIn.Log, q => q.Transport == "udp");
            Assert.Contains(userStandIn.Log, q => q.Transport == "tcp");
            // and the real upstream heard nothing more
            Assert.Equal(seenBefore, dns.QueriesFor(Name));

            // what a container sees when the proxy refuses: REFUSED (5) / NXDOMAIN (3), directly
            // and through Docker's embedded resolver alike (measured with Docker 20.10)
            foreach (var (rcode, viaDocker) in new[] { (5, 5), (3, 3) })
            {
                bridgeStandIn.Fail(Name, rcode);
                userStandIn.Fail(Name, rcode);
                Assert.Equal(rcode, DnsStub.Ask(bridgeNs, TestNet.Dns, 53, Name)?.Rcode);
                var through = DnsStub.Ask(userNs, "127.0.0.11", 53, Name)?.Rcode;
                output.WriteLine($"proxy rcode {rcode}: the container asking 127.0.0.11 gets {through}");
                Assert.Equal(viaDocker, through);
            }
        }
        finally
        {
            nft.Run(DnsProxyLayout.Render([Cmd("delete", "table", new JsonObject { ["family"] = "inet", ["name"] = table })]));
        }
    }
}
