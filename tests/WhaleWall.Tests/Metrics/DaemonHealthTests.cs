using System.Collections.Immutable;
using System.Net;
using Akka.TestKit.Xunit2;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Health;
using WhaleWall.Actors.Metrics;
using WhaleWall.Actors.Nft;
using WhaleWall.Actors.Docker;
using WhaleWall.Firewall.Policy;
using WhaleWall.Host.Metrics;
using Xunit;
using static WhaleWall.Actors.Health.HealthNotices;

namespace WhaleWall.Tests.Metrics;

/// <summary>`/healthz` (issue 12, point 10): every condition, with time passed in.</summary>
public class DaemonHealthTests
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 1, 10, 0, 0, TimeSpan.Zero);

    private static DaemonView Ready()
    {
        var view = new DaemonView();
        view.Update(s => s with { TableReady = true, DockerConnected = true });
        return view;
    }

    [Fact]
    public void A_daemon_with_its_table_and_docker_and_no_problem_is_healthy()
    {
        var health = Ready().Current.Health(T0);
        Assert.True(health.Healthy);
        Assert.Equal("ok\n", MetricsServer.HealthText(health));
    }

    [Theory]
    [InlineData(Components.Writer, "stuck: a transaction has not returned for 60 s")]
    [InlineData(Components.BridgeNetfilter, "/proc/sys/net/bridge/bridge-nf-call-iptables is 0")]
    [InlineData(Components.Sandbox, "landlock is not available")]
    public void Writer_bridge_netfilter_and_sandbox_problems_make_it_unhealthy_at_once_until_cleared(string component, string problem)
    {
        var view = Ready();
        view.Apply(new ComponentHealth(component, problem), T0);
        var health = view.Current.Health(T0);
        Assert.False(health.Healthy);
        Assert.Contains($"- {component}: {problem} (since 2026-12-01T10:00:00Z, 0 s)", MetricsServer.HealthText(health));

        view.Apply(new ComponentHealth(component, null), T0.AddSeconds(5));
        Assert.True(view.Current.Health(T0.AddSeconds(5)).Healthy);
    }

    [Fact]
    public void A_failing_store_is_tolerated_for_its_grace_then_unhealthy_and_healthy_again_once_it_recovers()
    {
        var view = Ready();
        view.Apply(new ComponentHealth(Components.Store, "cannot write state: disk full"), T0);
        var within = view.Current.Health(T0 + DaemonView.StoreGrace - TimeSpan.FromSeconds(1));
        Assert.True(within.Healthy);
        Assert.Contains("note: store: cannot write state: disk full", MetricsServer.HealthText(within));

        // a new failure text does not restart the grace
        view.Apply(new ComponentHealth(Components.Store, "cannot read state: timeout"), T0.AddSeconds(20));
        var after = view.Current.Health(T0 + DaemonView.StoreGrace);
        Assert.False(after.Healthy);
        Assert.Contains("- store: cannot read state: timeout (since 2026-12-01T10:00:00Z, 30 s)", MetricsServer.HealthText(after));

        view.Apply(new ComponentHealth(Components.Store, null), T0.AddSeconds(40));
        Assert.True(view.Current.Health(T0.AddSeconds(40)).Healthy);
        // a failure after a recovery starts a new grace
        view.Apply(new ComponentHealth(Components.Store, "cannot write state: again"), T0.AddSeconds(50));
        Assert.True(view.Current.Health(T0.AddSeconds(60)).Healthy);
    }

    [Fact]
    public void Every_problem_is_listed_each_on_a_line_of_its_own()
    {
        var view = new DaemonView();
        view.Update(s => s with { DockerError = "connection refused\nforged line" });
        view.Apply(new ComponentHealth(Components.Writer, "stuck"), T0);
        view.Apply(new ComponentHealth(Components.Store, "cannot write state"), T0);
        view.Apply(new ComponentHealth(Components.BridgeNetfilter, "bridge-nf-call-ip6tables is 0"), T0);
        view.Apply(new ComponentHealth(Components.Sandbox, "seccomp missing"), T0);
        var text = MetricsServer.HealthText(view.Current.Health(T0.AddMinutes(1)));
        Assert.Equal(
        [
            "unhealthy:",
            "- table: the start-up table is not in the kernel yet",
            @"- docker: event stream not connected (connection refused\nforged line)",
            "- bridge-netfilter: bridge-nf-call-ip6tables is 0 (since 2026-12-01T10:00:00Z, 60 s)",
            "- sandbox: seccomp missing (since 2026-12-01T10:00:00Z, 60 s)",
            "- store: cannot write state (since 2026-12-01T10:00:00Z, 60 s)",
            "- writer: stuck (since 2026-12-01T10:00:00Z, 60 s)",
        ], text.TrimEnd('\n').Split('\n'));
    }

    [Fact]
    public void Counters_are_attributed_only_to_addresses_that_can_be_in_the_sets()
    {
        var view = new DaemonView();
        var facts = new ContainerFacts("c-id", "c", true, ImmutableDictionary<string, string>.Empty,
            [
                new NetworkAttachment("front", "f", IPAddress.Parse("198.18.150.2"), null),
                new NetworkAttachment("lan", "l", IPAddress.Parse("198.18.151.2"), null, Driver: "macvlan"),
            ], []);
        view.Apply(new ContainerNotices.StateChanged("c-id", facts, ContainerState.Unfilterable, ["unfilterable: network lan (macvlan): ..."]));
        Assert.Equal([IPAddress.Parse("198.18.150.2")], view.Current.Owners.Keys);
        Assert.Equal(["unfilterable: network lan (macvlan): ..."], view.Current.Containers["c-id"].ReasonsOrEmpty.AsEnumerable());
    }
}

/// <summary>The metrics actor keeps the view and writes the daemon's report.</summary>
public class DaemonReportSpecs : TestKit
{
    private sealed class Reports : IDaemonReport
    {
        public readonly System.Collections.Concurrent.ConcurrentQueue<(DaemonView.Snapshot Snapshot, DateTimeOffset At)> Written = new();
        public void Write(DaemonView.Snapshot snapshot, DateTimeOffset now) => Written.Enqueue((snapshot, now));
    }

    [Fact]
    public void The_report_holds_each_containers_state_and_reasons_and_the_health_as_the_daemon_has_them()
    {
        var view = new DaemonView();
        var reports = new Reports();
        MetricsActor.Start(Sys, view, "metrics-report", reports);
        var facts = Facts.Container("web", "198.18.150.2");
        Sys.EventStream.Publish(new ContainerNotices.StateChanged(facts.Id, facts, ContainerState.Rejected, ["kernel: No such file or directory"]));
        Sys.EventStream.Publish(new NftWriterEvents.TableReady("t", 0, 0));
        Sys.EventStream.Publish(new DockerEventsEvents.StreamStateChanged(true, null));
        Sys.EventStream.Publish(new ComponentHealth(Components.Writer, "stuck"));
        AwaitCondition(() => reports.Written.Any(r => r.Snapshot.Containers.ContainsKey(facts.Id) && r.Snapshot.Components.ContainsKey(Components.Writer)
                                                    && r.Snapshot.TableReady && r.Snapshot.DockerConnected), TimeSpan.FromSeconds(5));
        var (snapshot, at) = reports.Written.Last();
        var json = DaemonReportFile.ToJson(snapshot, new DaemonIdentity(4242, at.AddMinutes(-1), "n1", "whalewall", "test"), at);
        Assert.Equal(4242, json["pid"]!.GetValue<int>());
        Assert.False(json["healthy"]!.GetValue<bool>());
        Assert.Contains("writer: stuck", json["problems"]![0]!.GetValue<string>());
        var web = json["containers"]!.AsArray().Single()!;
        Assert.Equal("rejected", web["state"]!.GetValue<string>());
        Assert.Equal("kernel: No such file or directory", web["reasons"]![0]!.GetValue<string>());
        Assert.Equal("198.18.150.2", web["addresses"]![0]!.GetValue<string>());
    }

    [Fact]
    public void The_report_is_written_at_most_once_a_second_and_again_within_the_heartbeat_when_nothing_changes()
    {
        var reports = new Reports();
        MetricsActor.Start(Sys, new DaemonView(), "metrics-heartbeat", reports);
        for (var i = 0; i < 50; i++)
        {
            var facts = Facts.Container($"c{i}", $"198.18.150.{i + 2}");
            Sys.EventStream.Publish(new ContainerNotices.StateChanged(facts.Id, facts, ContainerState.Enforced));
        }
        AwaitCondition(() => reports.Written.Any(r => r.Snapshot.Containers.Count == 50), TimeSpan.FromSeconds(5));
        var count = reports.Written.Count;
        Assert.InRange(count, 1, 3);
        AwaitCondition(() => reports.Written.Count > count, MetricsActor.ReportHeartbeat + TimeSpan.FromSeconds(2));
        var times = reports.Written.Select(r => r.At).ToList();
        Assert.All(times.Zip(times.Skip(1)), p => Assert.True(p.Item2 - p.Item1 >= TimeSpan.FromMilliseconds(900)));
    }
}
