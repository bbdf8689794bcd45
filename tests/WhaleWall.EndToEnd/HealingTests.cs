using System.Diagnostics;
using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.TestSupport.TestNet;

namespace WhaleWall.EndToEnd;

/// <summary>
/// Issue 12 (6, 8): the writer heals itself and removals land at once. Faults are injected into
/// the running daemon's kernel port (src/Host/FaultInjection.cs, enabled for the e2e daemon only)
/// while another container's allowed traffic is probed without pause: a fault in one place must
/// never cost a working container a packet.
/// </summary>
[Collection(E2eCollection.Name)]
public sealed class HealingTests(E2eFixture fx, ITestOutputHelper output)
{
    private DockerHarness H => fx.Harness;

    private const string Tcp80ToServer1 = """
        output:
          - ips: [198.19.0.10]
            proto: tcp
            dst_ports: [80]
        """;

    private static ContainerOptions OptedIn(string? rules = Tcp80ToServer1) => new() { Labels = E2eLabels.OptIn(rules) };

    /// <summary>Connects to an allowed destination without pause; every connection that fails is recorded.</summary>
    private sealed class AllowedProber : IAsyncDisposable
    {
        private readonly CancellationTokenSource stop = new();
        private readonly Task loop;
        private long probes;
        public List<string> Failures { get; } = new();
        public long Probes => Interlocked.Read(ref probes);

        public AllowedProber(string nsPath, string ip, int port) =>
            loop = Task.Factory.StartNew(() =>
            {
                while (!stop.IsCancellationRequested)
                {
                    var outcome = Probe.Tcp(nsPath, Guard(ip), port, TimeSpan.FromSeconds(1));
                    Interlocked.Increment(ref probes);
                    if (outcome != ProbeOutcome.Connected) lock (Failures) Failures.Add($"{DateTime.UtcNow:HH:mm:ss.fff} {outcome}");
                    Thread.Sleep(100);
                }
            }, TaskCreationOptions.LongRunning);

        public async ValueTask DisposeAsync()
        {
            stop.Cancel();
            await loop;
        }
    }

    private void Nft(params string[] args) => Shell.Run("nsenter", ["--net=" + H.HostNsPath, "nft", .. args]);

    [Fact]
    public Task An_internal_error_and_a_refused_removal_heal_while_other_containers_keep_working() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var steady = await fx.StartedAsync("steady", OptedIn());
        await fx.AssertTcpAllowed(steady.Ns, Server1, TcpPort);
        var prober = new AllowedProber(steady.Ns, Server1, TcpPort);
        TestContainer? removed = null;
        try
        {
            // an exception inside the writer while a new container is being programmed
            fx.InjectFaults("throw 1");
            var fresh = await fx.StartedAsync("after-fault", OptedIn());
            await fx.AssertTcpAllowed(fresh.Ns, Server1, TcpPort, what: "(programmed although the writer failed once)");
            fx.AssertTcpDropped(fresh.Ns, Server2, TcpPort, what: "(and only what its rule allows)");
            Assert.Contains("internal error", fx.Daemon.LogTail(400));

            // a removal the kernel refuses: the writer rebuilds the table without it
            fx.InjectFaults("refuse-deletes 3");
            removed = fresh.C;
            await fresh.C.RemoveAsync();
            var gone = await fx.Table.WaitUntil(t => t.ElementsMentioning(fresh.Ip).Count == 0, TimeSpan.FromSeconds(5));
            Assert.True(gone, $"the removed container's elements stayed after a refused removal\n{fx.TableText()}");
            Assert.Contains("rebuilding the table", fx.Daemon.LogTail(400));

            var (status, body) = await fx.HttpGetAsync("/healthz");
            Assert.True(status == 200, $"/healthz after healing: {status} {body}");
        }
        finally { await prober.DisposeAsync(); }
        output.WriteLine($"{prober.Probes} probes of the steady container, {prober.Failures.Count} failed");
        Assert.True(prober.Failures.Count == 0, "the steady container lost connections: " + string.Join(", ", prober.Failures));
        Assert.True(prober.Probes > 5, "the prober ran");
        await steady.C.RemoveAsync();
    });

    [Fact]
    public Task A_missing_operator_chain_at_start_up_costs_only_its_own_container() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var steady = await fx.StartedAsync("steady-start", OptedIn());
        Nft("add", "chain", "inet", fx.Daemon.Table, "audit");
        var jumper = await fx.StartedAsync("jumper", OptedIn($"""
            output:
              - ips: [{Server1}]
                proto: tcp
                dst_ports: [80]
                verdict:
                  chain: audit
            """));
        await fx.AssertTcpAllowed(jumper.Ns, Server1, TcpPort, what: "(through the operator's chain)");

        // a reboot: the kernel forgets the table, the operator's chain comes back only later
        await fx.Daemon.StopAsync();
        Nft("delete", "table", "inet", fx.Daemon.Table);
        await fx.StartDaemonAgainAsync();

        // right at "initial sync complete": the others are intact, the jumper alone is drop-all
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(steady.Ns, Guard(Server1), TcpPort, TimeSpan.FromSeconds(2)));
        Assert.True(fx.Table.IsManaged(jumper.Ip), "the refused container's address stays under policy");
        fx.AssertTcpDropped(jumper.Ns, Server1, TcpPort, what: "(its chain is missing: drop-all)");
        Assert.Contains("they are drop-all, the others intact", fx.Daemon.LogTail(200));
        var (_, statusText, _) = fx.Daemon.Cli("status");
        output.WriteLine(statusText);

        // the operator recreates the chain: the writer's own retry brings the jumper back
        Nft("add", "chain", "inet", fx.Daemon.Table, "audit");
        var back = await E2eProcess.Eventually(() => Probe.Tcp(jumper.Ns, Guard(Server1), TcpPort, TimeSpan.FromSeconds(1)) == ProbeOutcome.Connected,
            TimeSpan.FromSeconds(40), TimeSpan.FromMilliseconds(500));
        Assert.True(back, $"the jumper never got its rules back after the chain appeared\n{fx.TableText()}");
        await jumper.C.RemoveAsync();
        await steady.C.RemoveAsync();
    });

    [Fact]
    public Task Forty_containers_removed_at_once_leave_the_table_within_a_second() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var network = fx.Name("mass");
        await H.CreateNetworkAsync(network);
        var containers = new List<(TestContainer C, string Ip)>();
        foreach (var batch in Enumerable.Range(0, 40).Chunk(8))
            containers.AddRange(await Task.WhenAll(batch.Select(async i =>
            {
                var c = await H.RunContainerAsync(fx.Name("mass"), OptedIn() with { Network = network });
                return (c, await c.IpAsync());
            })));
        foreach (var (_, ip) in containers) await fx.Table.WaitManaged(ip);

        var sw = Stopwatch.StartNew();
        await Task.WhenAll(containers.Select(c => c.C.RemoveAsync()));
        var removed = sw.Elapsed;
        var ips = containers.Select(c => c.Ip).ToHashSet();
        var left = ips.ToList();
        while (sw.Elapsed < removed + TimeSpan.FromSeconds(3))
        {
            var sets = fx.Table.Sets();
            left = ips.Where(ip => sets.Values.Any(elems => elems.Any(e => e.ToJsonString().Contains($"\"{ip}\"")))).ToList();
            if (left.Count == 0) break;
            await Task.Delay(50);
        }
        var after = sw.Elapsed - removed;
        output.WriteLine($"docker removed 40 containers in {removed.TotalMilliseconds:F0} ms; their elements were gone {after.TotalMilliseconds:F0} ms later");
        Assert.True(left.Count == 0 && after <= TimeSpan.FromSeconds(1),
            $"{left.Count} of 40 removed containers still in the table {after.TotalMilliseconds:F0} ms after removal: {string.Join(", ", left.Take(10))}");
    });
}
