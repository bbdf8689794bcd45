using System.Text.Json.Nodes;
using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.TestSupport.TestNet;

namespace WhaleWall.EndToEnd;

/// <summary>Issue 12, points 5, 9 (flush) and 10 (health), against the daemon as a real process:
/// `status` shows what the daemon holds, not what the CLI would decide; `flush` refuses under a
/// running daemon; `/healthz` turns 503 when bridge netfilter is off and cannot be repaired.
/// Needs root and Docker (the e2e harness).</summary>
[Collection(E2eCollection.Name)]
public sealed class StatusHealthTests(E2eFixture fx, ITestOutputHelper output)
{
    private DockerHarness H => fx.Harness;

    private static ContainerOptions OptedIn(string? rules = null) => new() { Labels = E2eLabels.OptIn(rules) };

    private static JsonObject Status(WhaleWallDaemon d)
    {
        var (code, json, err) = d.Cli("status", "--json");
        Assert.True(code == 0, $"status failed ({code}): {err}");
        return JsonNode.Parse(json)!.AsObject();
    }

    private static string? StateOf(JsonObject status, string id) =>
        status["containers"]!.AsArray().FirstOrDefault(c => c!["id"]!.GetValue<string>() == id)?["state"]?.GetValue<string>();

    [Fact]
    public Task Status_shows_each_containers_state_as_the_daemon_holds_it_and_the_journal_as_last_known_when_it_is_stopped() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var enforced = await fx.StartedAsync("st-ok", OptedIn($"output: [{{ips: [{Server1}], proto: tcp, dst_ports: [80]}}]"));
        var invalid = await fx.StartedAsync("st-bad", OptedIn("output: [{ips: [nope]}]"));
        // valid labels the kernel refuses (no nft_queue here): the CLI alone would call it enforced
        var rejected = await fx.StartedAsync("st-rej", OptedIn($"output: [{{ips: [{Server1}], proto: tcp, dst_ports: [80], verdict: {{queue: 3}}}}]"));

        JsonObject status = null!;
        var seen = await E2eProcess.Eventually(() =>
        {
            status = Status(fx.Daemon);
            return StateOf(status, enforced.C.Id) == "enforced" && StateOf(status, invalid.C.Id) == "fail_closed" &&
                   StateOf(status, rejected.C.Id) == "rejected";
        }, TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(500));
        Assert.True(seen, "status does not show the daemon's states:\n" + status);
        var daemon = status["daemon"]!;
        Assert.True(daemon["running"]!.GetValue<bool>());
        Assert.True(daemon["reporting"]!.GetValue<bool>());
        Assert.True(daemon["healthy"]!.GetValue<bool>(), status.ToString());
        Assert.Equal(fx.Daemon.Pid, daemon["pid"]!.GetValue<int>());
        Assert.Equal("daemon", status["containers_source"]!.GetValue<string>());
        Assert.Contains("healthy", fx.Daemon.Cli("status").Out);
        // bound to its port on the bridge (issue 13): the daemon says which
        Assert.True(daemon["binding"]!.GetValue<bool>(), status.ToString());
        var seenBound = await E2eProcess.Eventually(() =>
        {
            status = Status(fx.Daemon);
            var net = status["containers"]!.AsArray().First(c => c!["id"]!.GetValue<string>() == enforced.C.Id)!["networks"]![0]!;
            return net["binding"]?.GetValue<string>() == "bound" && net["port"]?.GetValue<string>() is { } port && port.StartsWith("veth", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(500));
        Assert.True(seenBound, "status does not show the container bound to its veth:\n" + status);
        Assert.Matches(@"bound to port veth\S+ of ", fx.Daemon.Cli("status").Out);

        // stopped: the journal's containers are last known, never enforced
        await fx.Daemon.StopAsync();
        try
        {
            var stopped = Status(fx.Daemon);
            Assert.False(stopped["daemon"]!["running"]!.GetValue<bool>());
            Assert.Equal("journal", stopped["containers_source"]!.GetValue<string>());
            Assert.Equal("last_known", StateOf(stopped, enforced.C.Id));
            Assert.DoesNotContain(stopped["containers"]!.AsArray(), c => c!["state"]!.GetValue<string>() == "enforced");
            Assert.Contains("daemon: NOT running", fx.Daemon.Cli("status").Out);
        }
        finally { await fx.StartDaemonAgainAsync(); }

        foreach (var c in new[] { enforced.C, invalid.C, rejected.C }) await c.RemoveAsync();
    });

    [Fact]
    public Task Flush_refuses_to_delete_the_table_under_a_running_daemon() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var c = await fx.StartedAsync("fl", OptedIn());
        var (code, _, err) = fx.Daemon.Cli("flush");
        Assert.True(code == 1, $"flush under a running daemon exited {code}: {err}");
        Assert.Contains("daemon is running", err);
        Assert.True(fx.Table.Exists(), "flush deleted the running daemon's table");
        Assert.True(fx.Table.IsManaged(c.Ip), "flush removed the container's rules");
        Assert.True(fx.Daemon.IsRunning);
        await c.C.RemoveAsync();
    });

    [Fact]
    public Task Healthz_turns_503_while_bridge_netfilter_is_off_and_cannot_be_repaired_and_the_daemon_repairs_it_when_it_can() => fx.Run(output, async () =>
    {
        // a daemon of its own in a side namespace: bridge-nf-call-* are per network namespace on
        // this kernel, so turning them off there touches nothing else
        using var side = new SideNamespace(H, "hz");
        const string metrics = "127.0.0.1:50000";
        var d = new WhaleWallDaemon(side.Path, H.DockerHost, "ww_" + H.RunId.Replace("-", "_") + "_hz",
            Path.Combine(H.Dir, "whalewall-hz"), Path.Combine(H.Dir, "whalewall-hz.log"));
        d.ExtraEnvironment["WHALEWALL_DOCKER_ROOT"] = H.DataRoot;
        d.ExtraEnvironment["WHALEWALL_METRICS_ADDR"] = metrics;
        Task<(int Status, string Body)> Healthz() => MetricsScrape.GetAsync(side.Path, metrics, "/healthz");
        string Sysctl(string value) => Shell.Run("ip", "netns", "exec", side.Name, "sysctl", "-qw", $"net.bridge.bridge-nf-call-iptables={value}");
        string Current() => Shell.Run("ip", "netns", "exec", side.Name, "cat", "/proc/sys/net/bridge/bridge-nf-call-iptables").Trim();
        (int Status, string Body) last = default;
        async Task<bool> HealthzIs(int status, string? containing = null) => await E2eProcess.Eventually(async () =>
        {
            last = await Healthz();
            return last.Status == status && (containing is null || last.Body.Contains(containing));
        }, TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(250));

        try
        {
            // as in a container: /proc/sys read-only, so the daemon cannot repair it
            foreach (var a in WhaleWallDaemon.ReadOnlyProcSys) d.Wrapper.Add(a);
            await d.StartAsync();
            Assert.True(await HealthzIs(200), $"/healthz before: {last}\n{d.LogTail()}");

            Sysctl("0");
            Assert.True(await HealthzIs(503, "bridge-nf-call-iptables is 0 and cannot be set to 1"), $"/healthz with bridge-nf-call-iptables=0: {last}");
            Assert.StartsWith("unhealthy:\n- bridge-netfilter: ", last.Body);
            Assert.True(await E2eProcess.Eventually(() =>
                Status(d)["daemon"]!["problems"]!.AsArray().Any(p => p!.GetValue<string>().StartsWith("bridge-netfilter:")),
                TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(250)), "status shows the problem");

            Sysctl("1");
            Assert.True(await HealthzIs(200), $"/healthz after setting it back: {last}");
            await d.StopAsync();

            // where it can write /proc/sys, the daemon sets it back itself and says so
            d.Wrapper.Clear();
            await d.StartAsync();
            Sysctl("0");
            Assert.True(await E2eProcess.Eventually(() => Current() == "1", TimeSpan.FromSeconds(15), TimeSpan.FromMilliseconds(250)),
                "the daemon did not set bridge-nf-call-iptables back to 1\n" + d.LogTail());
            Assert.Contains("bridge-nf-call-iptables was 0; set it to 1", d.LogTail(200));
            Assert.True(await HealthzIs(200), $"/healthz after the repair: {last}");

            // flush --force does what it is told even under a running daemon
            Assert.True(d.KernelTable().Exists());
            var (code, _, err) = d.Cli("flush", "--force");
            Assert.True(code == 0, $"flush --force exited {code}: {err}");
            Assert.False(d.KernelTable().Exists(), "flush --force left the table");
        }
        finally
        {
            Shell.Try("ip", "netns", "exec", side.Name, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1");
            await d.StopAsync();
        }
    });
}
