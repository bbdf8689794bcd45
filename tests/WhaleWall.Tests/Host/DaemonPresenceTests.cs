using System.Diagnostics;
using System.Text.Json.Nodes;
using WhaleWall.Actors.Metrics;
using WhaleWall.Host;
using WhaleWall.Host.Sandbox;
using Xunit;

namespace WhaleWall.Tests.Host;

/// <summary>How the CLI knows a daemon runs (flush refuses, status says so), bridge netfilter's
/// check and repair, and what the sandbox reports missing.</summary>
public sealed class DaemonPresenceTests : IDisposable
{
    private readonly DirectoryInfo dir = Directory.CreateTempSubdirectory("ww-presence-");

    public void Dispose() => dir.Delete(true);

    [Fact]
    public void The_daemons_lock_is_held_while_it_lives_and_a_second_daemon_cannot_take_it()
    {
        Assert.False(DaemonLock.IsHeld(dir.FullName));
        using (var held = DaemonLock.TryAcquire(dir.FullName, TimeSpan.Zero))
        {
            Assert.NotNull(held);
            Assert.True(DaemonLock.IsHeld(dir.FullName));
            Assert.Null(DaemonLock.TryAcquire(dir.FullName, TimeSpan.FromMilliseconds(300)));
            Assert.Equal(Environment.ProcessId, DaemonLock.HolderPid(dir.FullName));
        }
        Assert.False(DaemonLock.IsHeld(dir.FullName));
    }

    [Fact]
    public void A_lock_held_by_another_process_counts_and_is_gone_when_that_process_is_killed()
    {
        File.WriteAllText(DaemonLock.PathIn(dir.FullName), "");
        using var other = Process.Start(new ProcessStartInfo("flock", ["-x", DaemonLock.PathIn(dir.FullName), "sleep", "30"]))!;
        try
        {
            Assert.True(SpinWait.SpinUntil(() => DaemonLock.IsHeld(dir.FullName), TimeSpan.FromSeconds(5)));
            other.Kill(entireProcessTree: true); // SIGKILL: the kernel drops the lock
            other.WaitForExit();
            Assert.True(SpinWait.SpinUntil(() => !DaemonLock.IsHeld(dir.FullName), TimeSpan.FromSeconds(5)));
        }
        finally { if (!other.HasExited) other.Kill(true); }
    }

    private void Report(int pid, DateTimeOffset written) =>
        File.WriteAllText(Path.Combine(dir.FullName, DaemonReportFile.FileName), new JsonObject
        {
            ["pid"] = pid, ["started"] = written.AddMinutes(-5).ToString("O"), ["written"] = written.ToString("O"),
            ["healthy"] = true, ["problems"] = new JsonArray(), ["pending"] = new JsonArray(), ["containers"] = new JsonArray(),
        }.ToJsonString());

    [Fact]
    public void Status_trusts_a_report_only_from_the_daemon_that_holds_the_lock_and_only_while_it_is_recent()
    {
        var now = DateTimeOffset.UtcNow;
        Report(Environment.ProcessId, now.AddSeconds(-2));
        var stopped = StateCommands.DaemonStatus.Read(dir.FullName, now);
        Assert.False(stopped.Running);                  // a report alone is a dead daemon's last words
        Assert.False(stopped.ReportIsCurrent);

        using var held = DaemonLock.TryAcquire(dir.FullName, TimeSpan.Zero);
        var running = StateCommands.DaemonStatus.Read(dir.FullName, now);
        Assert.True(running.Running && running.ReportIsCurrent && running.Reporting);
        Assert.True(running.ToJson()["healthy"]!.GetValue<bool>());

        var stale = StateCommands.DaemonStatus.Read(dir.FullName, now + StateCommands.ReportStaleAfter + TimeSpan.FromSeconds(1));
        Assert.True(stale.Running && stale.ReportIsCurrent);
        Assert.False(stale.Reporting);
        Assert.Null(stale.ToJson()["healthy"]);

        Report(Environment.ProcessId + 100_000, now);    // an earlier daemon's report
        var other = StateCommands.DaemonStatus.Read(dir.FullName, now);
        Assert.True(other.Running);
        Assert.False(other.ReportIsCurrent);
    }

    private string Bridge(string iptables, string? ip6tables)
    {
        File.WriteAllText(Path.Combine(dir.FullName, "bridge-nf-call-iptables"), iptables);
        if (ip6tables is not null) File.WriteAllText(Path.Combine(dir.FullName, "bridge-nf-call-ip6tables"), ip6tables);
        return dir.FullName;
    }

    [Fact]
    public void Bridge_netfilter_set_to_1_is_fine()
    {
        var result = BridgeNetfilter.Ensure(Bridge("1\n", "1\n"));
        Assert.Empty(result.Problems);
        Assert.Empty(result.Repaired);
        Assert.Null(result.Problem);
    }

    [Fact]
    public void Bridge_netfilter_turned_off_is_set_back_to_1_and_said()
    {
        var path = Bridge("0\n", "1\n");
        var result = BridgeNetfilter.Ensure(path);
        Assert.Empty(result.Problems);
        Assert.Contains("bridge-nf-call-iptables was 0; set it to 1", Assert.Single(result.Repaired));
        Assert.Equal("1", File.ReadAllText(Path.Combine(path, "bridge-nf-call-iptables")));
    }

    [Fact]
    public void Bridge_netfilter_missing_or_unwritable_is_a_problem()
    {
        var path = Bridge("1\n", null);   // br_netfilter not loaded: the files are not there
        Assert.Contains("bridge-nf-call-ip6tables is missing (br_netfilter not loaded)", BridgeNetfilter.Ensure(path).Problem);

        // a file that cannot be written (as /proc/sys in a container): /proc/self/status
        File.Delete(Path.Combine(path, "bridge-nf-call-iptables"));
        File.CreateSymbolicLink(Path.Combine(path, "bridge-nf-call-iptables"), "/proc/self/status");
        File.WriteAllText(Path.Combine(path, "bridge-nf-call-ip6tables"), "1");
        var problem = BridgeNetfilter.Ensure(path).Problem;
        Assert.Contains("bridge-nf-call-iptables is not 0 or 1 and cannot be set to 1", problem);
        Assert.Contains("NOT filtered", problem);
    }

    [Fact]
    public void A_sandbox_missing_a_layer_is_a_problem_a_complete_one_is_not()
    {
        Assert.Null(SandboxEntry.Missing(["landlock7", "seccomp"]));
        Assert.Contains("landlock is not available", SandboxEntry.Missing(["seccomp"]));
        Assert.Contains("system calls are NOT filtered", SandboxEntry.Missing(["landlock7"]));
        var none = SandboxEntry.Missing([])!;
        Assert.Contains("landlock", none);
        Assert.Contains("WHALEWALL_SANDBOX=off", none);
    }
}
