using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.TestSupport.TestNet;

namespace WhaleWall.EndToEnd;

/// <summary>
/// Issue 3's matrix: the daemon under test (a real process) against a real dockerd, asserted
/// with real connections from inside the containers' network namespaces. Denied probes are only
/// made after the daemon has programmed the container (its address is in managed4), so they
/// cannot pass vacuously; allowed probes retry for a few seconds.
/// </summary>
[Collection(E2eCollection.Name)]
public sealed class EnforcementTests(E2eFixture fx, ITestOutputHelper output)
{
    private DockerHarness H => fx.Harness;

    private Task<(TestContainer C, string Ns, string Ip)> Started(string hint, ContainerOptions? options = null, bool waitManaged = true) =>
        fx.StartedAsync(hint, options, waitManaged);

    private static ContainerOptions OptedIn(string? rules = null) => new() { Labels = E2eLabels.OptIn(rules) };

    private const string Tcp80ToServer1 = """
        output:
          - ips: [198.19.0.10]
            proto: tcp
            dst_ports: [80]
        """;

    // (1)
    [Fact]
    public Task Opted_in_container_without_rules_reaches_nothing_while_unlabeled_container_is_untouched() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var plain = await Started("plain", waitManaged: false);
        var locked = await Started("norules", OptedIn());

        Assert.False(fx.Table.IsManaged(plain.Ip), "an unlabeled container must not be managed");
        await fx.AssertTcpAllowed(plain.Ns, Server1, TcpPort, what: "(unlabeled)");
        await fx.AssertUdpAllowed(plain.Ns, Server1, UdpPort, what: "(unlabeled)");
        await E2eFixture.All(
            () => fx.AssertTcpDropped(locked.Ns, Server1, TcpPort, what: "(opted in, no rules)"),
            () => fx.AssertTcpDropped(locked.Ns, Server2, TcpPort, what: "(opted in, no rules)"),
            () => fx.AssertUdpDropped(locked.Ns, Server1, UdpPort, what: "(opted in, no rules)"),
            () => fx.AssertTcpDropped(locked.Ns, plain.Ip, 9, what: "(opted in, no rules, to a neighbour)"));

        await plain.C.RemoveAsync();
        await locked.C.RemoveAsync();
    });

    // (2)
    [Fact]
    public Task Tcp_output_rule_allows_only_its_address_and_port() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var c = await Started("tcp80", OptedIn(Tcp80ToServer1));

        await fx.AssertTcpAllowed(c.Ns, Server1, TcpPort);
        await E2eFixture.All(
            () => fx.AssertTcpDropped(c.Ns, Server2, TcpPort, what: "(other address)"),
            () => fx.AssertTcpDropped(c.Ns, Server1, TcpPortOther, what: "(other port)"),
            () => fx.AssertUdpDropped(c.Ns, Server1, UdpPort, what: "(other protocol)"));

        await c.C.RemoveAsync();
    });

    // (3)
    [Fact]
    public Task Udp_output_rule_allows_only_its_port() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var c = await Started("udp", OptedIn("""
            output:
              - ips: [198.19.0.10]
                proto: udp
                dst_ports: [5353]
            """));

        await fx.AssertUdpAllowed(c.Ns, Server1, UdpPort);
        await E2eFixture.All(
            () => fx.AssertUdpDropped(c.Ns, Server1, UdpPortOther, what: "(other udp port)"),
            () => fx.AssertTcpDropped(c.Ns, Server1, TcpPort, what: "(tcp is not udp)"));

        await c.C.RemoveAsync();
    });

    // (4) by container name
    [Fact]
    public Task Container_rule_by_name_opens_one_port_in_one_direction() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var net = fx.Name("net");
        await H.CreateNetworkAsync(net);
        // B is opted in too (no rules of its own): A reaches it only through A's rule naming it
        var b = await Started("b", new ContainerOptions { Network = net, Labels = E2eLabels.OptIn() });
        var a = await Started("a", new ContainerOptions
        {
            Network = net,
            Labels = E2eLabels.OptIn($"""
                output:
                  - container: {b.C.Name}
                    network: {net}
                    proto: tcp
                    dst_ports: [756]
                """),
        });
        await b.C.ListenTcpAsync(756);
        await b.C.ListenTcpAsync(757);
        await a.C.ListenTcpAsync(758);

        await fx.AssertTcpAllowed(a.Ns, b.Ip, 756, what: "(A -> B by name)");
        await E2eFixture.All(
            () => fx.AssertTcpDropped(a.Ns, b.Ip, 757, what: "(A -> B, port not in the rule)"),
            () => fx.AssertTcpDropped(b.Ns, a.Ip, 758, what: "(B -> A, the rule is one way)"),
            () => fx.AssertTcpDropped(a.Ns, Server1, TcpPort, what: "(A -> internet)"));

        await a.C.RemoveAsync();
        await b.C.RemoveAsync();
    });

    // (4) by compose service
    [Fact]
    public Task Container_rule_by_compose_service_opens_one_port_in_one_direction() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var net = fx.Name("cnet");
        var project = fx.Name("proj");
        await H.CreateNetworkAsync(net);
        // B is not opted in: B -> A is stopped by A's own ingress policy alone
        var b = await Started("svc-b", new ContainerOptions
        {
            Network = net,
            Labels = new Dictionary<string, string>().Compose(project, "svc"),
        }, waitManaged: false);
        var a = await Started("web-a", new ContainerOptions
        {
            Network = net,
            Labels = E2eLabels.OptIn("""
                output:
                  - container: svc
                    proto: tcp
                    dst_ports: [756]
                """).Compose(project, "web"),
        });
        await b.C.ListenTcpAsync(756);
        await b.C.ListenTcpAsync(757);
        await a.C.ListenTcpAsync(758);

        await fx.AssertTcpAllowed(a.Ns, b.Ip, 756, what: "(A -> compose service svc)");
        await E2eFixture.All(
            () => fx.AssertTcpDropped(a.Ns, b.Ip, 757, what: "(A -> B, port not in the rule)"),
            () => fx.AssertTcpDropped(b.Ns, a.Ip, 758, what: "(unmanaged B -> opted-in A)"));

        await a.C.RemoveAsync();
        await b.C.RemoveAsync();
    });

    // (5) mapped_ports.external
    [Fact]
    public Task Published_port_is_open_to_the_allowed_external_address_only() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var c = await Started("pub", new ContainerOptions
        {
            PublishTcp = { [8080] = 18080 },
            Labels = E2eLabels.OptIn("""
                mapped_ports:
                  external:
                    allow: true
                    ips: [198.19.0.20]
                """),
        });
        await c.C.ListenTcpAsync(8080);

        await fx.AssertTcpAllowed(H.InternetNsPath, HostLink4, 18080, Client1, "(allowed external client)");
        Assert.Equal(GreetingOutcome.Greeted, E2eProbe.TcpGreeting(H.InternetNsPath, HostLink4, 18080, sourceIp: Client1));
        fx.AssertTcpDropped(H.InternetNsPath, HostLink4, 18080, Client2, "(external client not in ips)");

        await c.C.RemoveAsync();
    });

    // (5) mapped_ports.localhost
    [Fact]
    public Task Localhost_mapped_port_opens_only_the_container_that_allows_it() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var open = await Started("local-open", new ContainerOptions
        {
            PublishTcp = { [8080] = 18081 },
            Labels = E2eLabels.OptIn("""
                mapped_ports:
                  localhost:
                    allow: true
                """),
        });
        var closed = await Started("local-closed", new ContainerOptions
        {
            PublishTcp = { [8080] = 18082 },
            Labels = E2eLabels.OptIn(),
        });
        await open.C.ListenTcpAsync(8080);
        await closed.C.ListenTcpAsync(8080);

        // docker-proxy accepts loopback connections itself and then dials the container, so the
        // verdict is whether the container's "ok\n" comes back, not whether the handshake completes
        var last = GreetingOutcome.TimedOut;
        var ok = await E2eProcess.Eventually(() =>
            (last = E2eProbe.TcpGreeting(H.HostNsPath, "127.0.0.1", 18081, TimeSpan.FromSeconds(1))) == GreetingOutcome.Greeted,
            E2eFixture.AllowedWithin, TimeSpan.FromMilliseconds(200));
        Assert.True(ok, $"127.0.0.1:18081 (localhost allowed) should reach the container, last {last}\n{fx.TableText()}");

        var denied = E2eProbe.TcpGreeting(H.HostNsPath, "127.0.0.1", 18082, TimeSpan.FromSeconds(1.5));
        output.WriteLine($"loopback to the closed published port: {denied}");
        Assert.NotEqual(GreetingOutcome.Greeted, denied);
        // localhost allowed does not mean the outside is allowed
        fx.AssertTcpDropped(H.InternetNsPath, HostLink4, 18081, Client1, "(no mapped_ports.external)");

        await open.C.RemoveAsync();
        await closed.C.RemoveAsync();
    });

    // (6)
    [Fact]
    public Task Restarted_container_gets_its_rules_back_and_removed_container_leaves_nothing() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var c = await Started("restart", OptedIn(Tcp80ToServer1));
        await fx.AssertTcpAllowed(c.Ns, Server1, TcpPort, what: "(before restart)");
        fx.AssertTcpDropped(c.Ns, Server2, TcpPort, what: "(before restart)");

        await c.C.StopAsync();
        // a stopped container has no address: its elements go (so the restart check below is not
        // satisfied by leftovers)
        Assert.True(await fx.Table.WaitUntil(t => !t.IsManaged(c.Ip), TimeSpan.FromSeconds(10)),
            $"{c.Ip} still managed after docker stop\n{fx.TableText()}");
        await c.C.StartAsync();
        var ip = await c.C.IpAsync();
        var ns = await c.C.NsPathAsync();
        output.WriteLine($"address before restart {c.Ip}, after {ip}");
        await fx.Table.WaitManaged(ip);
        await fx.AssertTcpAllowed(ns, Server1, TcpPort, what: "(after restart)");
        fx.AssertTcpDropped(ns, Server2, TcpPort, what: "(after restart)");

        await c.C.RemoveAsync();
        var gone = await fx.Table.WaitUntil(t => t.ElementsMentioning(ip).Count == 0, TimeSpan.FromSeconds(10));
        Assert.True(gone, $"after docker rm the table still mentions {ip}: " +
            string.Join(", ", fx.Table.ElementsMentioning(ip).Select(e => $"{e.Set}: {e.Element}")));
    });

    // (7)
    [Fact]
    public Task Rules_stay_while_the_daemon_is_down_and_containers_started_meanwhile_are_handled_after() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var before = await Started("down-before", OptedIn(Tcp80ToServer1));
        await fx.AssertTcpAllowed(before.Ns, Server1, TcpPort);

        var clean = await fx.Daemon.StopAsync();
        output.WriteLine($"daemon stopped on SIGTERM: {clean}");
        Assert.False(fx.Daemon.IsRunning);
        Assert.True(fx.Table.IsManaged(before.Ip), "the table must stay in the kernel after the daemon stops\n" + fx.TableText());
        await E2eFixture.All(
            () => fx.AssertTcpDropped(before.Ns, Server2, TcpPort, what: "(daemon down)"),
            () => fx.AssertTcpDropped(before.Ns, Server1, TcpPortOther, what: "(daemon down)"));
        await fx.AssertTcpAllowed(before.Ns, Server1, TcpPort, what: "(daemon down)");

        var during = await Started("down-during", OptedIn(Tcp80ToServer1), waitManaged: false);
        await fx.StartDaemonAgainAsync();
        output.WriteLine($"daemon restarted in {fx.Daemon.LastStartTime.TotalMilliseconds:F0} ms");
        await fx.Table.WaitManaged(during.Ip);
        await fx.AssertTcpAllowed(during.Ns, Server1, TcpPort, what: "(started while the daemon was down)");
        await E2eFixture.All(
            () => fx.AssertTcpDropped(during.Ns, Server2, TcpPort, what: "(started while the daemon was down)"),
            () => fx.AssertTcpDropped(before.Ns, Server2, TcpPort, what: "(after the daemon came back)"));

        await before.C.RemoveAsync();
        await during.C.RemoveAsync();
    });
}
