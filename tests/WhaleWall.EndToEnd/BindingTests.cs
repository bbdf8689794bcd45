using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.TestSupport.TestNet;

namespace WhaleWall.EndToEnd;

/// <summary>
/// Issue 13's "Prove it" list with real containers and real packets: a managed container is
/// bound to its port on the bridge, so an address that is not its own gets it nowhere, router
/// advertisements and link-local traffic change nothing, its rules land without waiting for the
/// store, no flow outlives the policy that allowed it, and a reused address starts clean (also
/// across a `kill -9`). Each test has a denied path that WhaleWall before the binding let
/// through (said at each test), and a control showing that the probe could succeed.
/// The kill -9 prober matrix is <see cref="RestartTests"/>' (not repeated here).
/// </summary>
[Collection(E2eCollection.Name)]
public sealed class BindingTests(E2eFixture fx, ITestOutputHelper output)
{
    private DockerHarness H => fx.Harness;

    private static ContainerOptions OptedIn(string? rules = null) => new() { Labels = E2eLabels.OptIn(rules) };

    private static string TcpTo(string ip, int port) => $"""
        output:
          - ips: [{ip}]
            proto: tcp
            dst_ports: [{port}]
        """;

    // ------------------------------------------------------------------ spoofing

    [Fact]
    public Task A_container_with_NET_ADMIN_reaches_nothing_from_an_address_it_added_and_its_own_policy_still_holds() => Run(async () =>
    {
        await fx.EnsureDaemonAsync();
        var net = fx.Name("spoof");
        await H.CreateNetworkAsync(net, "198.18.61.0/24");
        const string own = "198.18.61.10", stolen = "198.18.61.200";
        var neighbour = await fx.StartedAsync("spoof-neighbour", new ContainerOptions { Network = net, Ipv4Address = "198.18.61.20" }, waitManaged: false);
        await neighbour.C.ListenTcpAsync(7001);
        var c = await fx.StartedAsync("spoofer", OptedIn(TcpTo(Server1, TcpPort)) with
        {
            Network = net, Ipv4Address = own, CapAdd = ["NET_ADMIN"],
        });
        // its policy, from its own address, before the extra address exists
        await fx.AssertTcpAllowed(c.Ns, Server1, TcpPort, own, "(its own rule)");
        // the neighbour answers whoever may reach it (control for the drops below)
        await fx.AssertTcpAllowed(H.HostNsPath, neighbour.Ip, 7001, what: "(the neighbour answers)");

        var (code, _, err) = H.DockerCli("exec", c.C.Id, "ip", "addr", "add", stolen + "/24", "dev", "eth0");
        Assert.True(code == 0, $"ip addr add inside the container (NET_ADMIN) failed: {err}");
        Assert.Contains(stolen, H.DockerCli("exec", c.C.Id, "ip", "-4", "addr", "show", "dev", "eth0").Out);

        // WhaleWall before the binding: the added address was unmanaged and reached all three
        var fromStolen = await Task.WhenAll(new[] { (Server1, TcpPort), (Server2, TcpPort), (neighbour.Ip, 7001) }
            .Select(t => Task.Run(() => (To: $"{t.Item1}:{t.Item2}", Outcome: Probe.Tcp(c.Ns, Guard(t.Item1), t.Item2, E2eFixture.DeniedTimeout, stolen)))));
        var through = fromStolen.Where(r => r.Outcome != ProbeOutcome.TimedOut).ToList();
        Assert.True(through.Count == 0, $"from the added address {stolen}: " +
            string.Join(", ", fromStolen.Select(r => $"{r.To} {r.Outcome}")) + $"\n{fx.TableText()}\n{BridgeTableText()}");
        // and its own address keeps exactly its policy. First its neighbour cache is emptied: the
        // probes above left the neighbour's entry resolving (or failed) with ARP requests from the
        // added address, which the binding drops, and a connect queued on that entry would end in
        // "host unreachable" instead of meeting the policy (seen in CI)
        var (flushed, _, flushErr) = H.DockerCli("exec", c.C.Id, "ip", "neigh", "flush", "dev", "eth0");
        Assert.True(flushed == 0, $"ip neigh flush inside the container failed: {flushErr}");
        await fx.AssertTcpAllowed(c.Ns, Server1, TcpPort, own, "(its own rule, with the extra address present)");
        await E2eFixture.All(
            () => fx.AssertTcpDropped(c.Ns, Server2, TcpPort, own, "(not in its rules)"),
            () => fx.AssertTcpDropped(c.Ns, neighbour.Ip, 7001, own, "(the neighbour is not in its rules)"));

        await c.C.RemoveAsync();
        await neighbour.C.RemoveAsync();
    });

    [Fact]
    public Task Router_advertisements_from_a_managed_container_change_nothing_for_its_neighbours() => Run(async () =>
    {
        await fx.EnsureDaemonAsync();
        var prefix = IPAddress.Parse("2001:db8:6f:99::");
        const string prefixText = "2001:db8:6f:99::/64";

        // control: on a network without a managed container, the same advertisement re-routes a neighbour
        var free = fx.Name("ra-free");
        await H.CreateDualStackNetworkAsync(free, "198.18.65.0/24", "2001:db8:65::/64");
        var sender0 = await fx.StartedAsync("ra-sender0", new ContainerOptions { Network = free }, waitManaged: false);
        var victim0 = await fx.StartedAsync("ra-victim0", new ContainerOptions { Network = free }, waitManaged: false);
        AcceptRa(victim0.Ns);
        RawFrames.Send(sender0.Ns, "eth0", RouterAdvertisement(sender0.Ns, prefix));
        Assert.True(await RaTookEffect(victim0.Ns, prefixText, TimeSpan.FromSeconds(5)),
            $"control: a neighbour on a network without WhaleWall did not follow the advertisement:\n{Routes6(victim0.Ns)}");

        var net = fx.Name("ra");
        await H.CreateDualStackNetworkAsync(net, "198.18.62.0/24", "2001:db8:62::/64");
        var victim = await fx.StartedAsync("ra-victim", new ContainerOptions { Network = net }, waitManaged: false);
        var managedVictim = await fx.StartedAsync("ra-victim-managed", OptedIn() with { Network = net });
        var sender = await fx.StartedAsync("ra-sender", OptedIn() with { Network = net });
        AcceptRa(victim.Ns);
        AcceptRa(managedVictim.Ns);
        var before = Routes6(victim.Ns);
        var beforeManaged = Routes6(managedVictim.Ns);
        // what a container with Docker's default CAP_NET_RAW can send: a genuine advertisement
        // from its own MAC and link-local address (WhaleWall before the binding let it through)
        for (var i = 0; i < 3; i++)
        {
            RawFrames.Send(sender.Ns, "eth0", RouterAdvertisement(sender.Ns, prefix));
            await Task.Delay(200);
        }
        Assert.False(await RaTookEffect(victim.Ns, prefixText, TimeSpan.FromSeconds(2)),
            $"an unmanaged neighbour followed the managed container's advertisement:\n{Routes6(victim.Ns)}");
        Assert.False(await RaTookEffect(managedVictim.Ns, prefixText, TimeSpan.FromMilliseconds(200)),
            $"a managed neighbour followed the managed container's advertisement:\n{Routes6(managedVictim.Ns)}");
        Assert.Equal(before, Routes6(victim.Ns));
        Assert.Equal(beforeManaged, Routes6(managedVictim.Ns));

        foreach (var x in new[] { sender0, victim0, victim, managedVictim, sender }) await x.C.RemoveAsync();
    });

    // ------------------------------------------------------------------ IPv6 link-local

    [Fact]
    public Task On_a_dual_stack_network_an_opted_in_container_reaches_no_link_local_address() => Run(async () =>
    {
        await fx.EnsureDaemonAsync();
        var total = Stopwatch.StartNew();
        var net = fx.Name("ll");
        await H.CreateDualStackNetworkAsync(net, "198.18.66.0/24", "2001:db8:66::/64");
        var bridge = await H.BridgeNameAsync(net);
        var neighbour = await fx.StartedAsync("ll-neighbour", new ContainerOptions { Network = net }, waitManaged: false);
        var plain = await fx.StartedAsync("ll-plain", new ContainerOptions { Network = net }, waitManaged: false);
        var locked = await fx.StartedAsync("ll-locked", OptedIn() with { Network = net });
        output.WriteLine($"{total.ElapsedMilliseconds} ms: three containers up");
        await fx.Table.WaitManaged(await locked.C.Ipv6Async(net));
        output.WriteLine($"{total.ElapsedMilliseconds} ms: the opted-in container's IPv6 address is managed");
        var neighbourLl = LinkLocal(neighbour.Ns, "eth0");
        var hostLl = LinkLocal(H.HostNsPath, bridge);
        output.WriteLine($"neighbour {neighbourLl}, host ({bridge}) {hostLl}");
        var sw = Stopwatch.StartNew();

        // control: the same pings from an unlabeled container on the same network work
        Assert.True(await E2eProcess.Eventually(() => Ping6(plain.C, neighbourLl), TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(200)),
            "control: an unlabeled container could not ping the neighbour's link-local address");
        Assert.True(await E2eProcess.Eventually(() => Ping6(plain.C, hostLl), TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(200)),
            "control: an unlabeled container could not ping the host's link-local address");

        output.WriteLine($"controls answered within {sw.ElapsedMilliseconds} ms");
        // WhaleWall before the binding never managed fe80::/10: both answered
        Assert.False(Ping6(locked.C, neighbourLl), $"the opted-in container (no rules) pinged the neighbour's link-local {neighbourLl}\n{BridgeTableText()}");
        Assert.False(Ping6(locked.C, hostLl), $"the opted-in container (no rules) pinged the host's link-local {hostLl}\n{BridgeTableText()}");
        // and its global address stays under its policy (no rules: nothing)
        fx.AssertTcpDropped(locked.Ns, Server1v6, TcpPort, what: "(IPv6, no rules)");
        output.WriteLine($"{total.ElapsedMilliseconds} ms: denied pings and probe done");

        foreach (var x in new[] { neighbour, plain, locked }) await x.C.RemoveAsync();
    });

    // ------------------------------------------------------------------ the store hung

    /// <summary>Each container's first act: four denied connections (1 s each), then allowed ones
    /// until one works (40 tries, 1.5 s each at most), then the denied one once more; its log says
    /// what happened.</summary>
    private static string[] DeniedThenAllowed(string deniedIp, string allowedIp) =>
    [
        "sh", "-c",
        $"""
        r=""; i=0
        while [ $i -lt 4 ]; do
          if nc -w 1 {Guard(deniedIp)} {TcpPort} </dev/null 2>/dev/null | grep -q ok; then r="$r LEAK"; else r="$r blocked"; fi
          i=$((i+1))
        done
        echo "denied:$r"
        a=no; i=0
        while [ $i -lt 40 ]; do
          if nc -w 1 {Guard(allowedIp)} {TcpPort} </dev/null 2>/dev/null | grep -q ok; then a=yes; break; fi
          i=$((i+1)); sleep 0.5
        done
        echo "allowed: $a after $i retries"
        if nc -w 1 {Guard(deniedIp)} {TcpPort} </dev/null 2>/dev/null | grep -q ok; then echo "denied after: LEAK"; else echo "denied after: blocked"; fi
        echo finished
        trap 'exit 0' TERM; sleep 3600 & wait
        """,
    ];

    [Fact]
    public Task With_the_store_hung_new_containers_are_blocked_from_their_first_packet_and_their_allowed_flows_work() => Run(async () =>
    {
        // a daemon of its own on PostgreSQL, in the harness' host namespace (its table filters);
        // the shared daemon is stopped meanwhile so that it cannot be the one filtering
        await using var pg = new PostgresServer();
        await pg.StartAsync();
        var suffix = H.RunId.Replace("-", "_")[4..];
        var node = new WhaleWallDaemon(H.HostNsPath, H.DockerHost, "ww_pg_" + suffix, Path.Combine(H.Dir, "pgnode"), Path.Combine(H.Dir, "whalewall-pg.log"))
        {
            ExtraEnvironment =
            {
                ["WHALEWALL_DB"] = pg.SocketConnectionString,
                ["WHALEWALL_NODE_NAME"] = "pgnode",
                ["WHALEWALL_DOCKER_CONFIG"] = H.DaemonConfig,
                ["WHALEWALL_DNS_SERVERS"] = TestNet.Dns,
                ["WHALEWALL_METRICS_ADDR"] = "127.0.0.1:50001",
            },
        };
        await fx.Daemon.StopAsync();
        var made = new List<TestContainer>();
        try
        {
            await node.StartAsync();
            var net = fx.Name("hung");
            await H.CreateNetworkAsync(net, "198.18.67.0/24");
            // the store works: a first container is programmed (and the pool holds connections)
            var warm = await H.RunContainerAsync(fx.Name("hung-warm"), OptedIn(TcpTo(Server1, TcpPort)) with { Network = net });
            made.Add(warm);
            await node.KernelTable().WaitManaged(await warm.IpAsync());

            var stopped = pg.Freeze();
            output.WriteLine($"SIGSTOP to postgres pids {string.Join(", ", stopped)}");
            var sw = Stopwatch.StartNew();
            var five = await Task.WhenAll(Enumerable.Range(0, 5).Select(i => H.RunContainerAsync(fx.Name("hung"),
                OptedIn(TcpTo(Server1, TcpPort)) with { Network = net, Cmd = DeniedThenAllowed(Server2, Server1) })));
            made.AddRange(five);
            output.WriteLine($"five containers started in {sw.ElapsedMilliseconds} ms with the store stopped");

            var logs = new string[5];
            var finished = await E2eProcess.Eventually(() =>
            {
                for (var i = 0; i < 5; i++) logs[i] = H.DockerCli("logs", five[i].Id).Out;
                return logs.All(l => l.Contains("finished"));
            }, TimeSpan.FromSeconds(90), TimeSpan.FromMilliseconds(500));
            for (var i = 0; i < 5; i++) output.WriteLine($"{five[i].Name}: {logs[i].Replace('\n', ' ')}");
            Assert.True(finished, "not every container finished its probes within 90 s");
            // the store was hung the whole time (else the test proves nothing)
            Assert.True(stopped.All(PostgresServer.IsStopped), "postgres was not stopped throughout");
            Assert.All(logs, l => Assert.DoesNotContain("LEAK", l));
            Assert.All(logs, l => Assert.Contains("denied: blocked blocked blocked blocked", l));
            Assert.All(logs, l => Assert.Contains("allowed: yes", l));
            // by its policy then, not only while its port was unbound
            Assert.All(logs, l => Assert.Contains("denied after: blocked", l));
        }
        catch
        {
            output.WriteLine("---- pg node log (tail) ----");
            output.WriteLine(node.LogTail(150));
            output.WriteLine("---- pg node table ----");
            output.WriteLine(node.KernelTable().ListText());
            throw;
        }
        finally
        {
            pg.Thaw();
            foreach (var c in made) { try { await c.RemoveAsync(); } catch { } }
            await node.StopAsync();
            // its tables go (only its own: named for this run)
            node.Cli("flush");
            Shell.Try("nsenter", "--net=" + H.HostNsPath, "nft", "delete", "table", "inet", node.Table);
            Shell.Try("nsenter", "--net=" + H.HostNsPath, "nft", "delete", "table", "bridge", node.Table);
            await fx.StartDaemonAgainAsync();
        }
    });

    // ------------------------------------------------------------------ no flow outlives its policy

    /// <summary>One allowed UDP flow, exchanged over 3 s so that conntrack holds it as a stream (120 s).</summary>
    private static async Task UdpStream(string ns, string ip, int port, string source, int sport)
    {
        Assert.True(await E2eProcess.Eventually(() => Probe.UdpEcho(ns, ip, port, TimeSpan.FromSeconds(1), source, sport),
            E2eFixture.AllowedWithin, TimeSpan.FromMilliseconds(200)), "the allowed flow never worked");
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(3))
        {
            Assert.True(Probe.UdpEcho(ns, ip, port, TimeSpan.FromSeconds(1), source, sport), "the allowed flow broke");
            await Task.Delay(300);
        }
    }

    [Fact]
    public Task A_flow_of_a_removed_container_does_not_carry_over_to_the_next_owner_of_its_address() => Run(async () =>
    {
        await fx.EnsureDaemonAsync();
        var net = fx.Name("flowaddr");
        await H.CreateNetworkAsync(net, "198.18.63.0/24");
        const string ip = "198.18.63.10";
        const int sport = 40123;
        var udpTo5353 = $"""
            output:
              - ips: [{Server1}]
                proto: udp
                dst_ports: [{UdpPort}]
            """;
        var old = await fx.StartedAsync("flow-old", OptedIn(udpTo5353) with { Network = net, Ipv4Address = ip });
        await UdpStream(old.Ns, Server1, UdpPort, ip, sport);
        var sw = Stopwatch.StartNew();

        // re-created with new labels on the same address: udp is no longer allowed, tcp 80 is
        await old.C.RemoveAsync();
        var next = await fx.StartedAsync("flow-new", OptedIn(TcpTo(Server1, TcpPort)) with { Network = net, Ipv4Address = ip });
        Assert.Equal(ip, next.Ip);
        await fx.AssertTcpAllowed(next.Ns, Server1, TcpPort, ip, "(the new owner's own rule: it is bound and talks)");
        output.WriteLine($"old owner removed and new owner talking after {sw.Elapsed.TotalSeconds:F1} s");
        // the same 5-tuple as the old flow: WhaleWall before the binding left its conntrack entry
        // in place, which accepted this as "established"
        Assert.False(Probe.UdpEcho(next.Ns, Server1, UdpPort, TimeSpan.FromSeconds(1.5), ip, sport),
            $"the new owner's datagram on the old owner's flow got an answer\n{fx.TableText()}");
        // and a new flow of its own is denied anyway
        fx.AssertUdpDropped(next.Ns, Server1, UdpPort, "(not in the new labels)");

        await next.C.RemoveAsync();
    });

    [Fact]
    public Task A_flow_of_an_address_a_running_container_left_does_not_carry_over_to_the_next_owner_of_that_address() => Run(async () =>
    {
        await fx.EnsureDaemonAsync();
        var main = fx.Name("leftmain");
        var side = fx.Name("leftside");
        await H.CreateNetworkAsync(main, "198.18.68.0/24");
        await H.CreateNetworkAsync(side, "198.18.69.0/24");
        const string sideIp = "198.18.69.10", peerIp = "198.18.69.20";
        const int port = 5300, sport = 40125;
        var peer = await fx.StartedAsync("left-peer", new ContainerOptions { Network = side, Ipv4Address = peerIp }, waitManaged: false);
        using var echo = UdpEchoServer.Start(peer.Ns, peerIp, port);
        var old = await fx.StartedAsync("left-old", OptedIn($"""
            output:
              - ips: [{peerIp}]
                proto: udp
                dst_ports: [{port}]
            """) with { Network = main });
        Assert.Equal(0, H.DockerCli("network", "connect", "--ip", sideIp, side, old.C.Id).Code);
        await fx.Table.WaitManaged(sideIp);
        await UdpStream(old.Ns, peerIp, port, sideIp, sport); // from its address on the side network

        // it leaves the side network and goes on running on the main one; its address there is
        // free for the next container, which may not send udp at all
        Assert.Equal(0, H.DockerCli("network", "disconnect", side, old.C.Id).Code);
        Assert.True(await fx.Table.WaitUntil(t => !t.IsManaged(sideIp), TimeSpan.FromSeconds(15)),
            $"{sideIp} stayed managed after the disconnect\n{fx.TableText()}");
        Assert.True(fx.Table.IsManaged(old.Ip), "the container still running on the main network lost its rules there");
        var next = await fx.StartedAsync("left-next", OptedIn(TcpTo(Server1, TcpPort)) with { Network = side, Ipv4Address = sideIp });
        await fx.AssertTcpAllowed(next.Ns, Server1, TcpPort, sideIp, "(the new owner's own rule: it is bound and talks)");
        // the same 5-tuple as the old flow: WhaleWall before kept its conntrack entry (the address
        // counted as narrowed, and no rule looks at an address nobody holds), which accepted this
        // datagram as "established"
        Assert.False(Probe.UdpEcho(next.Ns, peerIp, port, TimeSpan.FromSeconds(1.5), sideIp, sport),
            $"the new owner's datagram on the old owner's flow got an answer\n{fx.TableText()}");
        fx.AssertUdpDropped(next.Ns, peerIp, port, "(not in the new owner's labels)");

        await next.C.RemoveAsync();
        await old.C.RemoveAsync();
        await peer.C.RemoveAsync();
    });

    [Fact]
    public Task An_established_flow_stops_when_a_policy_change_no_longer_allows_it() => Run(async () =>
    {
        await fx.EnsureDaemonAsync();
        var net = fx.Name("flowchg");
        await H.CreateNetworkAsync(net);
        var peer = await fx.StartedAsync("flow-peer", new ContainerOptions { Network = net }, waitManaged: false);
        var a = await fx.StartedAsync("flow-a", OptedIn($"""
            output:
              - container: {peer.C.Name}
                network: {net}
                proto: tcp
                dst_ports: [7000]
            """) with { Network = net });
        using var sink = TcpSink.Start(peer.Ns, peer.Ip, 7000);
        await fx.AssertTcpAllowed(a.Ns, peer.Ip, 7000, what: "(its rule names the peer)");

        using var flow = TcpSink.Connect(a.Ns, peer.Ip, 7000);
        var sent = 0L;
        void Send(int n) { flow.Send(Encoding.ASCII.GetBytes(new string('x', n))); sent += n; }
        Send(10);
        Assert.True(sink.WaitFor(10, TimeSpan.FromSeconds(5)), "the flow never carried data");

        // the policy changes under the flow: the peer no longer has the name the rule gives
        Assert.Equal(0, H.DockerCli("rename", peer.C.Id, peer.C.Name + "-renamed").Code);
        Assert.True(await fx.Table.WaitUntil(t => !t.ElementsMentioning(a.Ip).Any(e => e.Element.Contains($"\"{peer.Ip}\"")), TimeSpan.FromSeconds(15)),
            $"the rule's element for the renamed peer {peer.Ip} stayed\n{fx.TableText()}");
        await Task.Delay(1000); // the daemon cuts flows right after the kernel commit
        var baseline = sink.Received;
        for (var i = 0; i < 5; i++) { Send(5); await Task.Delay(200); }
        // WhaleWall before the binding kept accepting the flow as established
        Assert.False(sink.WaitFor(baseline + 1, TimeSpan.FromSeconds(2)),
            $"the flow went on after its policy changed: {sink.Received - baseline} more bytes arrived\n{fx.TableText()}");
        // a new connection is denied too (the table changed, not just the flow)
        fx.AssertTcpDropped(a.Ns, peer.Ip, 7000, what: "(after the rename)");

        await a.C.RemoveAsync();
        await peer.C.RemoveAsync();
    });

    // ------------------------------------------------------------------ a reused address across kill -9

    [Fact]
    public Task After_kill_9_a_new_container_on_a_removed_containers_address_never_reaches_what_the_old_one_could() => Run(async () =>
    {
        await fx.EnsureDaemonAsync();
        var net = fx.Name("reuse");
        await H.CreateNetworkAsync(net, "198.18.64.0/24");
        const string ip = "198.18.64.10";
        var old = await fx.StartedAsync("reuse-old", OptedIn(TcpTo(Server1, TcpPort)) with { Network = net, Ipv4Address = ip });
        await fx.AssertTcpAllowed(old.Ns, Server1, TcpPort, what: "(the old owner's rule)");

        await fx.Daemon.Kill();
        await old.C.RemoveAsync();
        var next = await H.RunContainerAsync(fx.Name("reuse-new"), OptedIn(TcpTo(Server2, TcpPort)) with { Network = net, Ipv4Address = ip });
        Assert.Equal(ip, await next.IpAsync());
        var ns = await next.NsPathAsync();

        // a probe every 100 ms from before the daemon starts until 5 s after it is up; each probe
        // on a thread of its own (a dropped one blocks for its whole timeout: the thread pool
        // would fall behind and space them out)
        var results = new List<(double At, ProbeOutcome Outcome)>();
        var probes = new List<Thread>();
        var stop = false;
        var clock = Stopwatch.StartNew();
        var ticker = new Thread(() =>
        {
            var next = TimeSpan.Zero;
            while (!Volatile.Read(ref stop))
            {
                var at = clock.Elapsed.TotalMilliseconds;
                var t = new Thread(() =>
                {
                    var outcome = Probe.Tcp(ns, Guard(Server1), TcpPort, TimeSpan.FromSeconds(1));
                    lock (results) results.Add((at, outcome));
                }) { IsBackground = true, Name = "reuse probe" };
                lock (probes) probes.Add(t);
                t.Start();
                next += TimeSpan.FromMilliseconds(100);
                var wait = next - clock.Elapsed;
                if (wait > TimeSpan.Zero) Thread.Sleep(wait);
            }
        }) { IsBackground = true, Name = "reuse ticker" };
        ticker.Start();
        await Task.Delay(1000);
        var startedAt = clock.Elapsed.TotalMilliseconds;
        await fx.StartDaemonAgainAsync();
        var upAt = clock.Elapsed.TotalMilliseconds;
        await Task.Delay(5000);
        Volatile.Write(ref stop, true);
        ticker.Join();
        foreach (var t in probes) Assert.True(t.Join(TimeSpan.FromSeconds(10)), "a probe did not end");

        var leaks = results.Where(r => r.Outcome == ProbeOutcome.Connected).OrderBy(r => r.At).ToList();
        output.WriteLine($"{results.Count} probes; daemon started at {startedAt:F0} ms, up at {upAt:F0} ms; " +
                         $"{results.Count(r => r.At < startedAt)} before the start; outcomes: " +
                         string.Join(", ", results.GroupBy(r => r.Outcome).Select(g => $"{g.Key} {g.Count()}")));
        Assert.True(results.Count(r => r.At < startedAt) >= 5, "the prober did not run before the daemon started");
        Assert.True(results.Count(r => r.At > upAt + 4000) >= 5, "the prober did not run 5 s past the start");
        Assert.True(leaks.Count == 0, $"the new owner reached the old owner's destination {leaks.Count} times, at " +
            string.Join(", ", leaks.Take(20).Select(l => $"{l.At:F0} ms")) + $"\n{fx.TableText()}\n{BridgeTableText()}");

        // control: the new owner talks, under its own rules
        await fx.Table.WaitManaged(ip);
        await fx.AssertTcpAllowed(ns, Server2, TcpPort, what: "(the new owner's own rule)");
        fx.AssertTcpDropped(ns, Server1, TcpPort, what: "(the old owner's rule, after reconcile)");

        await next.RemoveAsync();
    });

    // ------------------------------------------------------------------ helpers

    /// <summary><see cref="E2eFixture.Run"/>, plus the bridge table and the bridges' ports on failure.</summary>
    private Task Run(Func<Task> body) => fx.Run(output, async () =>
    {
        try { await body(); }
        catch
        {
            output.WriteLine("---- bridge table ----");
            output.WriteLine(BridgeTableText());
            output.WriteLine("---- bridge ports (host namespace) ----");
            output.WriteLine(Shell.Try("nsenter", "--net=" + H.HostNsPath, "ip", "-o", "link", "show", "type", "veth").Out);
            throw;
        }
    });

    private string BridgeTableText() => new KernelTable(H.HostNsPath, fx.Daemon.Table, "bridge").ListText();

    private static string InNs(string nsPath, params string[] argv) => Shell.Run("nsenter", ["--net=" + nsPath, .. argv]);

    private static string Mac(string nsPath, string dev) =>
        InNs(nsPath, "ip", "-o", "link", "show", "dev", dev).Split("link/ether ")[1].Split(' ')[0];

    /// <summary>The interface's link-local address (waits for it: DAD takes a moment).</summary>
    private static string LinkLocal(string nsPath, string dev)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            var text = InNs(nsPath, "ip", "-6", "-o", "addr", "show", "dev", dev, "scope", "link");
            var addr = text.Split('\n').Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Where(f => f.Length > 3 && f[2] == "inet6" && !string.Join(' ', f).Contains("tentative"))
                .Select(f => f[3].Split('/')[0]).FirstOrDefault();
            if (addr is not null) return addr;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"no link-local address on {dev} in {nsPath}: {text}");
            Thread.Sleep(100);
        }
    }

    /// <summary>`ping6` from inside the container (busybox), through eth0 to a link-local address
    /// read from one of this harness' own interfaces. True if any reply came.</summary>
    private bool Ping6(TestContainer from, string linkLocal)
    {
        if (!linkLocal.StartsWith("fe80:", StringComparison.Ordinal)) throw new ArgumentException($"{linkLocal} is not link-local");
        var sw = Stopwatch.StartNew();
        // -W 1: busybox otherwise waits 10 s for late answers once it has sent its -c packets
        var r = H.DockerCli("exec", from.Id, "ping6", "-c", "2", "-w", "2", "-W", "1", "-I", "eth0", linkLocal);
        output.WriteLine($"ping6 {linkLocal} from {from.Name}: exit {r.Code} after {sw.ElapsedMilliseconds} ms: {r.Out.Replace('\n', ' ')} {r.Err.Trim()}");
        // a failure must be a ping that went out unanswered, not one that could not be sent
        if (r.Code != 0) Assert.Contains("2 packets transmitted, 0 packets received", r.Out);
        return r.Code == 0;
    }

    private static void AcceptRa(string nsPath)
    {
        InNs(nsPath, "sysctl", "-qw", "net.ipv6.conf.eth0.forwarding=0");
        InNs(nsPath, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_ra=2");
        InNs(nsPath, "sysctl", "-qw", "net.ipv6.conf.eth0.autoconf=1");
    }

    private static string Routes6(string nsPath) => InNs(nsPath, "ip", "-6", "route", "show");

    private static async Task<bool> RaTookEffect(string nsPath, string prefix, TimeSpan within) =>
        await E2eProcess.Eventually(() =>
        {
            var routes = Routes6(nsPath);
            return routes.Contains(prefix.Split('/')[0]) || routes.Contains("default via fe80");
        }, within, TimeSpan.FromMilliseconds(100));

    /// <summary>A router advertisement from the container's own MAC and link-local address.</summary>
    private static byte[] RouterAdvertisement(string nsPath, IPAddress prefix) =>
        RawFrames.RouterAdvertisement(RawFrames.Mac(Mac(nsPath, "eth0")), IPAddress.Parse(LinkLocal(nsPath, "eth0")), prefix, 64);
}
