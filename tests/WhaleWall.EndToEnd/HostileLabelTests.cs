using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.TestSupport.TestNet;

namespace WhaleWall.EndToEnd;

/// <summary>
/// Issue 12, point 2, against the running daemon: containers whose <c>whalewall.rules</c> is
/// one of the labels that crashed or hung it (60 KB of nesting, an alias graph as a mapping
/// key, a rule of 256 x 256 x 256), each next to a harmless-looking rule. The daemon must stay
/// alive with bounded memory, hold each hostile container drop-all (its address programmed,
/// the harmless-looking connection dropped), serve a normal container started right after, and
/// do all of it again when restarted with the hostile containers still there. Before the fix
/// the first label killed the daemon (and every container started later ran unfiltered), the
/// second pinned a thread forever, the third cost ~6 GB per event.
/// </summary>
[Collection(E2eCollection.Name)]
public sealed class HostileLabelTests(E2eFixture fx, ITestOutputHelper output)
{
    private DockerHarness H => fx.Harness;

    /// <summary>Peak resident memory the daemon may reach (VmHWM, since its start). It runs
    /// at ~100 MiB here; the multiplicative label alone took ~6 GB before the fix.</summary>
    private const long MaxPeakRssKiB = 400 * 1024;

    private const string Tcp80ToServer1 = """
        output:
          - ips: [198.19.0.10]
            proto: tcp
            dst_ports: [80]
        """;

    private static readonly IReadOnlyDictionary<string, string> Errors = new Dictionary<string, string>
    {
        ["deep-nesting"] = "nested deeper than 16 levels",
        ["alias-graph-as-key"] = "nodes once aliases are expanded",
        ["multiplicative"] = "this rule expands to 16777216 set elements",
    };

    [Fact]
    public Task Hostile_labels_leave_the_daemon_alive_and_bounded_and_their_containers_drop_all_also_after_a_restart() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        // WHALEWALL_E2E_HOSTILE_SHAPES=a,b runs only those (to show each one against another build)
        var only = Environment.GetEnvironmentVariable("WHALEWALL_E2E_HOSTILE_SHAPES")?.Split(',', StringSplitOptions.RemoveEmptyEntries);
        var shapes = HostileLabels.ReproducedWithAnAllowedRule(Server1, TcpPort).Where(s => only is null || only.Contains(s.Key)).ToList();
        Assert.NotEmpty(shapes);
        var hostile = new List<(string Shape, TestContainer C, string Ns, string Ip)>();
        var normal = new List<TestContainer>();
        try
        {
            foreach (var (shape, rules) in shapes)
            {
                Assert.True(rules.Length < 64 * 1024, $"{shape}: {rules.Length} characters");
                var c = await H.RunContainerAsync(fx.Name("hostile-" + shape), new ContainerOptions { Labels = E2eLabels.OptIn(rules) });
                // Docker keeps a 60 KB label value whole
                Assert.Equal(rules, (await c.InspectAsync()).Config.Labels[E2eLabels.Rules]);
                var ip = await c.IpAsync();
                await Programmed(ip, $"the {shape} container"); // so the denied probe below cannot pass vacuously
                hostile.Add((shape, c, await c.NsPathAsync(), ip));
                AssertDaemonAliveAndBounded($"after the {shape} container");
            }
            await AssertHostileDropAllAndNormalServed("first start", hostile, normal);
            foreach (var (shape, message) in Errors.Where(e => shapes.Any(s => s.Key == e.Key)))
                Assert.True(fx.Daemon.LogTail(400).Contains(message), $"the daemon log names the {shape} error (\"{message}\")");

            // restart with the hostile containers present: start-up replays and re-decides them all
            Assert.True(await fx.Daemon.StopAsync(), "the daemon stops on SIGTERM");
            await fx.StartDaemonAgainAsync();
            foreach (var h in hostile) await Programmed(h.Ip, $"the {h.Shape} container after the restart");
            AssertDaemonAliveAndBounded("after the restart");
            await AssertHostileDropAllAndNormalServed("after a restart", hostile, normal);
        }
        finally
        {
            foreach (var c in hostile.Select(h => h.C).Concat(normal)) await c.RemoveAsync();
        }
    });

    private async Task AssertHostileDropAllAndNormalServed(string when, List<(string Shape, TestContainer C, string Ns, string Ip)> hostile, List<TestContainer> normal)
    {
        await E2eFixture.All([.. hostile.Select(h => (Action)(() =>
            fx.AssertTcpDropped(h.Ns, Server1, TcpPort, what: $"({h.Shape} container, {when}: its harmless-looking rule must not apply either)")))]);
        AssertDaemonAliveAndBounded($"{when}, after probing the hostile containers");

        // a normal opted-in container right after is served: allowed connects, denied drops
        var ok = await fx.StartedAsync("normal", new ContainerOptions { Labels = E2eLabels.OptIn(Tcp80ToServer1) });
        normal.Add(ok.C);
        await fx.AssertTcpAllowed(ok.Ns, Server1, TcpPort, what: $"(normal container, {when})");
        await E2eFixture.All(
            () => fx.AssertTcpDropped(ok.Ns, Server1, TcpPortOther, what: $"(normal container, other port, {when})"),
            () => fx.AssertTcpDropped(ok.Ns, Server2, TcpPort, what: $"(normal container, other address, {when})"));
        AssertDaemonAliveAndBounded($"{when}, after the normal container");
    }

    /// <summary>Waits until the daemon has put <paramref name="ip"/> in managed4; if it never
    /// does, says whether the daemon died or is stuck.</summary>
    private async Task Programmed(string ip, string what)
    {
        try { await fx.Table.WaitManaged(ip, TimeSpan.FromSeconds(30)); }
        catch (TimeoutException e)
        {
            AssertDaemonAliveAndBounded($"while waiting for {what} to be programmed");
            throw new Xunit.Sdk.XunitException($"the daemon (alive) never programmed {what}: {e.Message.Split('\n')[0]}");
        }
    }

    private void AssertDaemonAliveAndBounded(string when)
    {
        var pid = fx.Daemon.Pid;
        Assert.True(pid != 0, $"the daemon died {when}:\n{fx.Daemon.LogTail(60)}");
        Assert.Contains("whalewall", File.ReadAllText($"/proc/{pid}/cmdline")); // the daemon itself, not a wrapper
        var peak = ChildRun.PeakRss(pid);
        output.WriteLine($"{when}: daemon pid {pid}, VmRSS {ChildRun.Rss(pid) / 1024} MiB, VmHWM {peak / 1024} MiB");
        Assert.True(peak > 0, $"cannot read /proc/{pid}/status");
        Assert.True(peak < MaxPeakRssKiB, $"the daemon's peak RSS is {peak / 1024} MiB {when} (bound {MaxPeakRssKiB / 1024} MiB)");
    }
}
