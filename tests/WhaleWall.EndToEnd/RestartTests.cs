using System.Diagnostics;
using System.Text.Json.Nodes;
using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.TestSupport.TestNet;

namespace WhaleWall.EndToEnd;

/// <summary>
/// Issue 6's restart matrix with real containers: the daemon stopped, killed (`kill -9`) in the
/// middle of container bursts, Docker changed while it was down, dockerd restarted under it,
/// two nodes sharing one PostgreSQL. "Equal to a fresh start" is checked against a second
/// daemon with an empty state dir whose table lives in a namespace of its own (<see
/// cref="SideNamespace"/>), so it never filters the packets the prober counts.
/// </summary>
[Collection(E2eCollection.Name)]
public sealed class RestartTests(E2eFixture fx, ITestOutputHelper output)
{
    private DockerHarness H => fx.Harness;

    private const string Tcp80ToServer1 = """
        output:
          - ips: [198.19.0.10]
            proto: tcp
            dst_ports: [80]
        """;

    private static ContainerOptions OptedIn(string? rules = Tcp80ToServer1) => new() { Labels = E2eLabels.OptIn(rules) };

    /// <summary>Starts a daemon with an empty state dir in <paramref name="ns"/>, waits until its
    /// table equals the daemon under test's, and stops it (its table goes with the namespace).</summary>
    private async Task AssertSameAsFreshStart(SideNamespace ns, string what, TimeSpan? within = null)
    {
        var fresh = new WhaleWallDaemon(ns.Path, H.DockerHost, "ww_fresh", Path.Combine(H.Dir, "fresh-" + Guid.NewGuid().ToString("N")[..6]), Path.Combine(H.Dir, "whalewall-fresh.log"));
        await fresh.StartAsync();
        try
        {
            var main = fx.Table;
            var reference = fresh.KernelTable();
            List<string> diff = [];
            var same = await E2eProcess.Eventually(() =>
            {
                diff = TableCompare.Diff(TableCompare.Elements(main), TableCompare.Elements(reference), "restarted", "fresh start");
                return diff.Count == 0;
            }, within ?? TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(200));
            Assert.True(same, $"{what}: the table differs from a fresh start's:\n{string.Join('\n', diff.Take(40))}");
        }
        finally
        {
            await fresh.StopAsync();
            Directory.Delete(fresh.DataDir, true);
        }
    }

    /// <summary>Probes from inside an opted-in container, without pause, a port its rules deny:
    /// any connection (or reset from the far side) is a packet that got through — a leak.</summary>
    private sealed class Prober
    {
        private readonly CancellationTokenSource stop = new();
        private readonly List<Task> loops = new();
        private long probes, leaked;
        public long Probes => Interlocked.Read(ref probes);
        public long Leaked => Interlocked.Read(ref leaked);
        public List<string> Leaks { get; } = new();

        public Prober(string nsPath, int parallel = 3)
        {
            for (var i = 0; i < parallel; i++)
                loops.Add(Task.Factory.StartNew(() =>
                {
                    while (!stop.IsCancellationRequested)
                    {
                        var outcome = Probe.Tcp(nsPath, Guard(Server1), TcpPortOther, TimeSpan.FromMilliseconds(300));
                        Interlocked.Increment(ref probes);
                        if (outcome == ProbeOutcome.TimedOut) continue;
                        Interlocked.Increment(ref leaked);
                        lock (Leaks) Leaks.Add($"{DateTime.UtcNow:HH:mm:ss.fff} {outcome}");
                    }
                }, TaskCreationOptions.LongRunning));
        }

        public async Task StopAsync()
        {
            stop.Cancel();
            await Task.WhenAll(loops);
        }
    }

    private async Task<(TestContainer C, string Ns, string Ip)> Managed(string hint, ContainerOptions options)
    {
        var c = await H.RunContainerAsync(fx.Name(hint), options);
        var ip = await c.IpAsync();
        await fx.Table.WaitManaged(ip);
        return (c, await c.NsPathAsync(), ip);
    }

    [Fact]
    public Task Kill_9_during_container_bursts_never_lets_a_denied_packet_through_and_recovers_the_fresh_start_table() => fx.Run(output, async () =>
    {
        var rounds = int.TryParse(Environment.GetEnvironmentVariable("WHALEWALL_E2E_KILL_ROUNDS"), out var r) ? r : 20;
        await fx.EnsureDaemonAsync();
        using var side = new SideNamespace(H, "r");
        var prober = await Managed("prober", OptedIn());
        await fx.AssertTcpAllowed(prober.Ns, Server1, TcpPort, what: "(prober's own rule)");
        fx.AssertTcpDropped(prober.Ns, Server1, TcpPortOther, what: "(prober's denied port, before the rounds)");

        var probe = new Prober(prober.Ns);
        var rng = new Random(Environment.TickCount);
        var alive = new List<TestContainer>();
        var sw = Stopwatch.StartNew();
        var restarts = new List<double>();
        try
        {
            for (var round = 0; round < rounds; round++)
            {
                // a burst: three opted-in containers, one plain, and the oldest two go away
                var doomed = alive.Take(Math.Max(0, alive.Count - 8)).ToList();
                alive.RemoveAll(doomed.Contains);
                var burst = Task.Run(async () =>
                {
                    var made = new List<TestContainer>();
                    for (var k = 0; k < 3; k++) made.Add(await H.RunContainerAsync(fx.Name($"burst{round}"), OptedIn()));
                    made.Add(await H.RunContainerAsync(fx.Name($"plain{round}")));
                    foreach (var d in doomed) await d.RemoveAsync();
                    return made;
                });
                await Task.Delay(rng.Next(0, 1500));
                await fx.Daemon.Kill();
                alive.AddRange(await burst);

                var restart = Stopwatch.StartNew();
                await fx.StartDaemonAgainAsync();
                restarts.Add(restart.Elapsed.TotalMilliseconds);
                if (round % 5 == 4 || round == rounds - 1)
                    await AssertSameAsFreshStart(side, $"after round {round + 1}");
                else
                    foreach (var c in alive.TakeLast(4))
                        if (c.Name.StartsWith("burst")) await fx.Table.WaitManaged(await c.IpAsync());
            }
        }
        finally
        {
            await probe.StopAsync();
        }

        output.WriteLine($"[kill-9] rounds {rounds}, probes {probe.Probes}, leaked {probe.Leaked}, " +
                         $"restart to table median {restarts.Order().ElementAt(restarts.Count / 2):F0} ms, total {sw.Elapsed.TotalSeconds:F0} s");
        Console.WriteLine($"[kill-9] rounds {rounds}, probes {probe.Probes}, leaked {probe.Leaked}, " +
                          $"restart to table median {restarts.Order().ElementAt(restarts.Count / 2):F0} ms, total {sw.Elapsed.TotalSeconds:F0} s");
        Assert.True(probe.Probes >= rounds, $"the prober made only {probe.Probes} probes");
        Assert.True(probe.Leaked == 0, $"{probe.Leaked} denied probes got through:\n{string.Join('\n', probe.Leaks)}");
        await fx.AssertTcpAllowed(prober.Ns, Server1, TcpPort, what: "(prober's own rule, after the rounds)");

        foreach (var c in alive) await c.RemoveAsync();
        await prober.C.RemoveAsync();
    });

    [Fact]
    public Task Containers_created_removed_and_relabelled_while_the_daemon_is_down_are_reconciled() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        using var side = new SideNamespace(H, "r");
        var kept = await Managed("kept", OptedIn());
        var removed = await Managed("removed", OptedIn());
        var relabel = await Managed("relabel", OptedIn());

        Assert.True(await fx.Daemon.StopAsync(), "the daemon should stop on SIGTERM");
        await removed.C.RemoveAsync();
        // labels cannot change in place: a relabel is a new container under the same name (compose does this)
        await relabel.C.RemoveAsync();
        var relabelled = await H.RunContainerAsync(relabel.C.Name, OptedIn("""
            output:
              - ips: [198.19.0.11]
                proto: tcp
                dst_ports: [80]
            """));
        var created = await H.RunContainerAsync(fx.Name("created"), OptedIn());
        var relabelledIp = await relabelled.IpAsync();
        var createdIp = await created.IpAsync();

        await fx.StartDaemonAgainAsync();
        // addresses are reused: until the reconcile is through, the journal's (stale) rules of a
        // removed container may cover a new one, so wait for the new rules themselves first
        Assert.True(await fx.Table.WaitUntil(t => t.ElementsMentioning(relabelledIp).Any(e => e.Element.Contains(Server2)), TimeSpan.FromSeconds(20)),
            $"the relabelled container {relabelledIp} never got its new rule");
        await AssertSameAsFreshStart(side, "after changes while down");
        await fx.Table.WaitManaged(createdIp);
        if (removed.Ip != relabelledIp && removed.Ip != createdIp)
            Assert.True(await fx.Table.WaitUntil(t => t.ElementsMentioning(removed.Ip).Count == 0, TimeSpan.FromSeconds(15)),
                $"the removed container's address {removed.Ip} still has elements");

        var relabelledNs = await relabelled.NsPathAsync();
        await fx.AssertTcpAllowed(relabelledNs, Server2, TcpPort, what: "(new labels)");
        fx.AssertTcpDropped(relabelledNs, Server1, TcpPort, what: "(old labels no longer apply)");
        await fx.AssertTcpAllowed(kept.Ns, Server1, TcpPort, what: "(kept)");

        // status reads the journal while the daemon runs
        var (code, json, err) = fx.Daemon.Cli("status", "--json");
        Assert.True(code == 0, $"status failed ({code}): {err}");
        var ids = JsonNode.Parse(json)!["containers"]!.AsArray().Select(c => c!["id"]!.GetValue<string>()).ToHashSet();
        Assert.Contains(kept.C.Id, ids);
        Assert.Contains(relabelled.Id, ids);
        Assert.Contains(created.Id, ids);
        Assert.DoesNotContain(removed.C.Id, ids);
        Assert.DoesNotContain(relabel.C.Id, ids);

        foreach (var c in new[] { kept.C, relabelled, created }) await c.RemoveAsync();
    });

    [Fact]
    public Task Dockerd_restart_under_the_daemon_keeps_rules_meanwhile_then_reconnects_and_reconciles() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        using var side = new SideNamespace(H, "r");
        var a = await Managed("survivor", OptedIn());
        var before = TableCompare.Elements(fx.Table);

        await H.StopDockerdAsync();
        try
        {
            await Task.Delay(3000);
            Assert.True(fx.Daemon.IsRunning, "the daemon must survive Docker going away");
            // Stopping dockerd kills its containers: their `die` events take their rules away (a dead
            // process sends nothing; the rules come back when it starts). Nothing else may change and
            // nothing may be added while Docker is gone.
            var meanwhile = TableCompare.Elements(fx.Table);
            Assert.True(fx.Table.Exists(), "the table stays while Docker is down");
            var added = TableCompare.Diff(before, meanwhile, "before", "meanwhile").Where(d => d.Contains("only in meanwhile")).ToList();
            Assert.True(added.Count == 0, "rules appeared while Docker was down:\n" + string.Join('\n', added));
            var changed = TableCompare.Diff(before, meanwhile, "before", "meanwhile").Where(d => !d.Contains(a.Ip)).ToList();
            Assert.True(changed.Count == 0, "rules of containers Docker did not stop changed while it was down:\n" + string.Join('\n', changed));
        }
        finally
        {
            await H.StartDockerdAgainAsync();
        }

        // the daemon reconnects by itself: a new container gets its rules, a restarted one again
        var b = await Managed("after-dockerd", OptedIn());
        await a.C.StartAsync();
        var aIp = await a.C.IpAsync();
        await fx.Table.WaitManaged(aIp);
        var aNs = await a.C.NsPathAsync();
        await fx.AssertTcpAllowed(aNs, Server1, TcpPort, what: "(after dockerd restart)");
        fx.AssertTcpDropped(aNs, Server1, TcpPortOther, what: "(after dockerd restart)");
        await AssertSameAsFreshStart(side, "after dockerd restart");

        await a.C.RemoveAsync();
        await b.C.RemoveAsync();
    });

    [Fact]
    public Task Two_nodes_sharing_one_PostgreSQL_each_recover_exactly_their_own_state() => fx.Run(output, async () =>
    {
        await using var pg = new PostgresServer();
        await pg.StartAsync();
        using var side = new SideNamespace(H, "p");
        WhaleWallDaemon Node(string node) =>
            new(side.Path, H.DockerHost, "ww_" + node, Path.Combine(H.Dir, node), Path.Combine(H.Dir, "whalewall-" + node + ".log"))
            {
                ExtraEnvironment = { ["WHALEWALL_DB"] = pg.SocketConnectionString, ["WHALEWALL_NODE_NAME"] = node },
            };
        var n1 = Node("n1");
        var n2 = Node("n2");
        try
        {
            await n1.StartAsync();
            await n2.StartAsync();
            var both = await H.RunContainerAsync(fx.Name("both"), OptedIn());
            var bothIp = await both.IpAsync();
            await n1.KernelTable().WaitManaged(bothIp);
            await n2.KernelTable().WaitManaged(bothIp);

            await n2.StopAsync();
            var only1 = await H.RunContainerAsync(fx.Name("only1"), OptedIn());
            var only1Ip = await only1.IpAsync();
            await n1.KernelTable().WaitManaged(only1Ip);
            await n1.StopAsync();

            // restart both with Docker out of reach: each rebuilds its table from its own journal alone
            foreach (var n in new[] { n1, n2 })
            {
                n.ExtraEnvironment["DOCKER_HOST"] = "unix://" + Path.Combine(H.Dir, "no-docker.sock");
                Shell.Try("nsenter", "--net=" + side.Path, "nft", "delete", "table", "inet", n.Table);
                await n.StartAsync();
            }
            Assert.True(n1.KernelTable().IsManaged(bothIp) && n1.KernelTable().IsManaged(only1Ip), "n1 lost its own state:\n" + n1.KernelTable().ListText());
            Assert.True(n2.KernelTable().IsManaged(bothIp), "n2 lost its own state:\n" + n2.KernelTable().ListText());
            Assert.False(n2.KernelTable().IsManaged(only1Ip), "n2 recovered n1's state:\n" + n2.KernelTable().ListText());

            await n1.StopAsync();
            await n2.StopAsync();
            var names1 = StatusIds(n1);
            var names2 = StatusIds(n2);
            Assert.Contains(only1.Id, names1);
            Assert.DoesNotContain(only1.Id, names2);
            Assert.Contains(both.Id, names2);

            // flush: the table goes, and so does the state (the DNS proxy's learned addresses too)
            var learned = Path.Combine(n2.DataDir, "learned.json");
            if (!File.Exists(learned)) File.WriteAllText(learned, "{\"version\":1,\"containers\":{}}");
            var (code, _, err) = n2.Cli("flush");
            Assert.True(code == 0, $"flush failed: {err}");
            Assert.False(n2.KernelTable().Exists(), "flush left the table");
            Assert.Empty(StatusIds(n2));
            Assert.False(File.Exists(learned), "flush left the DNS proxy's learned addresses");
            Assert.Contains(only1.Id, StatusIds(n1));

            await both.RemoveAsync();
            await only1.RemoveAsync();
        }
        finally
        {
            await n1.StopAsync();
            await n2.StopAsync();
        }
    });

    private static HashSet<string> StatusIds(WhaleWallDaemon d)
    {
        var (code, json, err) = d.Cli("status", "--json");
        Assert.True(code == 0, $"status failed ({code}): {err}");
        return JsonNode.Parse(json)!["containers"]!.AsArray().Select(c => c!["id"]!.GetValue<string>()).ToHashSet();
    }
}
