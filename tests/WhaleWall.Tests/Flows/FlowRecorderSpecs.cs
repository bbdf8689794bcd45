using System.Collections.Concurrent;
using System.Net;
using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Flows;
using WhaleWall.Actors.State;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Flows;
using WhaleWall.Firewall.Policy;
using Xunit;
using Xunit.Abstractions;

namespace WhaleWall.Tests.Flows;

/// <summary>The flow recorder against a real SQLite journal, with new flows from a fake kernel
/// source: it listens only while a container learns, records what it is told, and a recorder
/// started again reads the same flows back.</summary>
public sealed class FlowRecorderSpecs(ITestOutputHelper output) : TestKit(
    PersistenceConfig.Config(new StateOptions("sqlite", Path.Combine(Path.GetTempPath(), "ww-flows-" + Guid.NewGuid().ToString("N")[..8]), "unused")),
    output: output)
{
    private sealed class FakeFlows : INewFlows
    {
        public BlockingCollection<NewFlow> Queue { get; } = new();
        public int Opened;
        public bool Disposed;
        public bool Read(TimeSpan timeout, List<NewFlow> into)
        {
            if (Queue.TryTake(out var f, timeout)) into.Add(f);
            return true;
        }
        public void Dispose() => Disposed = true;
    }

    private readonly string node = "n-" + Guid.NewGuid().ToString("N")[..8];

    private static NewFlow Tcp(string from, string to, ushort port, uint mark = 0) => new(new ConntrackFlow(ConntrackFlow.Tcp,
        new FlowTuple(IPAddress.Parse(from), IPAddress.Parse(to), 40000, port), new FlowTuple(IPAddress.Parse(to), IPAddress.Parse(from), port, 40000)), mark);

    private FlowLog Flows(IActorRef recorder) => recorder.Ask<FlowEvents.Log>(FlowCommands.Get.Instance, TimeSpan.FromSeconds(5)).Result.Flows;

    [Fact]
    public void It_records_the_flows_of_a_learning_container_only_while_one_learns_and_a_new_recorder_reads_them_back()
    {
        var source = new FakeFlows();
        var recorder = Sys.ActorOf(FlowRecorderActor.Props(node, () => { source.Opened++; return source; }));
        var web = Facts.Container("web", "198.18.128.2");
        var quiet = Facts.Container("quiet", "198.18.128.9");
        recorder.Tell(new ContainerNotices.StateChanged(quiet.Id, quiet, ContainerState.Enforced));
        Flows(recorder);
        Assert.Equal(0, source.Opened); // nobody learns: the kernel is not listened to

        recorder.Tell(new ContainerNotices.StateChanged(web.Id, web, ContainerState.Enforced) { Mode = PolicyMode.Audit, Learn = true });
        recorder.Tell(new FlowCommands.Resolved(web.Id, "api.example.test", [(IPAddress.Parse("198.19.0.10"), TimeSpan.FromSeconds(60))]));
        AwaitAssert(() => Assert.Equal(1, source.Opened));
        source.Queue.Add(Tcp("198.18.128.2", "198.19.0.10", 443, mark: 0x40000000));
        source.Queue.Add(Tcp("198.18.128.2", "198.19.0.11", 80));
        source.Queue.Add(Tcp("198.18.128.9", "198.19.0.11", 22)); // not learning
        AwaitAssert(() => Assert.Equal(2, Flows(recorder).Owners.GetValueOrDefault("web")?.Flows.Count ?? 0), TimeSpan.FromSeconds(5));
        var owner = Flows(recorder).Owners["web"];
        Assert.Equal(1, owner.Flows[new FlowKey(DestinationKind.Host, "api.example.test", L4Proto.Tcp, 443)].AuditDrops);
        Assert.Contains(new FlowKey(DestinationKind.Address, "198.19.0.11", L4Proto.Tcp, 80), owner.Flows.Keys);
        Assert.False(Flows(recorder).Owners.ContainsKey("quiet"));

        // journalled within a flush interval; the container goes, the listening stops
        Thread.Sleep(FlowRecorderActor.FlushEvery * 2);
        recorder.Tell(new ContainerNotices.StateChanged(web.Id, null, ContainerState.Gone));
        AwaitAssert(() => Assert.True(source.Disposed), TimeSpan.FromSeconds(5));
        Watch(recorder);
        Sys.Stop(recorder);
        ExpectTerminated(recorder);

        var reader = Sys.ActorOf(FlowRecorderActor.Props(node, open: null));
        Assert.Equal(owner.Flows.OrderBy(f => f.Key.Port), Flows(reader).Owners["web"].Flows.OrderBy(f => f.Key.Port));
        Assert.Equal(0, Sys.ActorOf(FlowRecorderActor.Props("other-" + node, open: null)).Ask<FlowEvents.Log>(FlowCommands.Get.Instance).Result.Flows.Owners.Count);
    }
}
