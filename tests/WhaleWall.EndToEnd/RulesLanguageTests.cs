using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.TestSupport.TestNet;

namespace WhaleWall.EndToEnd;

/// <summary>Issue 4 against the real daemon: the rest of the rules language, the defects of the
/// old tools, dockerwall's label, asserted with real packets.</summary>
[Collection(E2eCollection.Name)]
public sealed class RulesLanguageTests(E2eFixture fx, ITestOutputHelper output)
{
    private DockerHarness H => fx.Harness;

    private Task<(TestContainer C, string Ns, string Ip)> Started(string hint, ContainerOptions options) => fx.StartedAsync(hint, options);

    private static ContainerOptions OptedIn(string rules, string? network = null) =>
        new() { Labels = E2eLabels.OptIn(rules), Network = network };

    private static bool Ping(string ns, string ip) =>
        Shell.Try("nsenter", "--net=" + ns, "busybox", "ping", "-c", "1", "-W", "1", Guard(ip)).Code == 0;

    private async Task AssertPingAnswered(string ns, string ip) =>
        Assert.True(await E2eProcess.Eventually(() => Ping(ns, ip), E2eFixture.AllowedWithin, TimeSpan.FromMilliseconds(200)),
            $"expected a ping reply from {ip}\n{fx.TableText()}");

    [Fact]
    public Task Several_ips_port_ranges_with_inclusive_ends_and_icmp_types() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        using var s2range = H.InternetTcpServer(Server2, 90);
        var c = await Started("ranges", OptedIn($"""
            output:
              - ips: [{Server1}, {Server2}]
                proto: tcp
                dst_ports: [81-90]
              - ips: [{Server1}]
                proto: icmp
                icmp_types: [echo-request]
            """));
        await fx.AssertTcpAllowed(c.Ns, Server1, TcpPortOther, what: "(81: first port of the range)");
        await fx.AssertTcpAllowed(c.Ns, Server2, 90, what: "(90: last port of the range, second address)");
        await E2eFixture.All(
            () => fx.AssertTcpDropped(c.Ns, Server1, TcpPort, what: "(80: just below the range)"),
            () => fx.AssertTcpDropped(c.Ns, Server2, TcpPort, what: "(80 on the second address)"));
        await AssertPingAnswered(c.Ns, Server1);
        Assert.False(Ping(c.Ns, Server2), "ping to an address without an icmp rule must fail");
        await c.C.RemoveAsync();
    });

    [Fact]
    public Task Dual_stack_container_is_filtered_on_both_families() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var network = fx.Name("ds");
        await H.CreateDualStackNetworkAsync(network, "198.18.90.0/24", "2001:db8:90::/64");
        using var v6http = H.InternetTcpServer(Server1v6, TcpPort);
        using var v6other = H.InternetTcpServer(Server2v6, TcpPort);
        var c = await Started("dualstack", OptedIn($"""
            output:
              - ips: [{Server1v6}]
                proto: tcp
                dst_ports: [80]
            """, network));
        var ip6 = await c.C.Ipv6Async(network);
        await fx.Table.WaitUntil(t => t.ElementsMentioning(ip6).Count > 0, TimeSpan.FromSeconds(10));
        await fx.AssertTcpAllowed(c.Ns, Server1v6, TcpPort, what: "(IPv6 rule)");
        await E2eFixture.All(
            () => fx.AssertTcpDropped(c.Ns, Server2v6, TcpPort, what: "(other IPv6 address)"),
            () => fx.AssertTcpDropped(c.Ns, Server1, TcpPort, what: "(IPv4: no rule)"));
        await c.C.RemoveAsync();
    });

    [Fact]
    public Task Oversized_log_prefix_fails_closed_with_a_clear_error() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var prefix = new string('x', 130);
        var c = await Started("longprefix", OptedIn($"""
            output:
              - ips: [{Server1}]
                proto: tcp
                dst_ports: [80]
                log_prefix: "{prefix}"
            """));
        fx.AssertTcpDropped(c.Ns, Server1, TcpPort, what: "(invalid labels: drop-all)");
        Assert.True(await E2eProcess.Eventually(() => fx.Daemon.LogTail(400).Contains($"{c.C.Name}") &&
                fx.Daemon.LogTail(400).Contains("output[0].log_prefix (line 5): log prefix is 130 bytes; the kernel allows at most 127"),
            TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(200)), "the error names the container, label path, line and reason");
        await c.C.RemoveAsync();
    });

    [Fact]
    public Task Queue_verdict_on_a_kernel_without_nfqueue_leaves_the_container_drop_all() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var c = await Started("queue", OptedIn($"""
            output:
              - ips: [{Server1}]
                proto: tcp
                dst_ports: [80]
                verdict:
                  queue: 3
            """));
        // this kernel has no nft_queue: WhaleWall must not leave the container open or half-programmed
        await Task.Delay(500);
        fx.AssertTcpDropped(c.Ns, Server1, TcpPort, what: "(queue verdict refused by the kernel)");
        Assert.Contains("kernel rejected", fx.Daemon.LogTail(400));
        await c.C.RemoveAsync();
    });

    [Fact]
    public Task Container_rule_follows_a_container_that_appears_later_and_goes_when_it_goes() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var network = fx.Name("late");
        await H.CreateNetworkAsync(network);
        var lateName = fx.Name("latecomer");
        var a = await Started("early", OptedIn($"""
            output:
              - container: {lateName}
                proto: tcp
                dst_ports: [756]
            """, network));
        var late = await H.RunContainerAsync(lateName, new ContainerOptions { Network = network });
        using var listener = await late.ListenTcpAsync(756);
        var lateIp = await late.IpAsync();
        await fx.AssertTcpAllowed(a.Ns, lateIp, 756, what: "(rule follows the new container)");

        await late.RemoveAsync();
        await fx.Table.WaitUntil(t => t.ElementsMentioning(lateIp).Count == 0, TimeSpan.FromSeconds(10));
        var reuse = await H.RunContainerAsync(fx.Name("reuser"), new ContainerOptions { Network = network });
        var reuseIp = await reuse.IpAsync();
        using var listener2 = await reuse.ListenTcpAsync(756);
        fx.AssertTcpDropped(a.Ns, reuseIp, 756, what: "(another container, possibly on the same address)");
        await reuse.RemoveAsync();
        await a.C.RemoveAsync();
    });

    [Fact]
    public Task Dockerwall_outbound_label_allows_its_addresses_on_every_port() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var c = await Started("dockerwall", new ContainerOptions
        {
            Labels = new Dictionary<string, string> { ["dockerwall.outbound"] = $"{Server1},_dns_" },
        });
        await fx.AssertTcpAllowed(c.Ns, Server1, TcpPort);
        await fx.AssertTcpAllowed(c.Ns, Server1, TcpPortOther);
        fx.AssertTcpDropped(c.Ns, Server2, TcpPort, what: "(not in the outbound list)");
        await c.C.RemoveAsync();
    });
}
