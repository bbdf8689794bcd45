using Akka.Actor;
using Akka.TestKit.Xunit2;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Metrics;
using WhaleWall.Actors.Nft;
using Xunit;
using static WhaleWall.Actors.Nft.NftWriterCommands;

namespace WhaleWall.Tests.Actors;

/// <summary>What containers tell metrics (event stream) and how the metrics actor keeps the view.</summary>
public class ContainerNoticeSpecs : TestKit
{
    private readonly FakeDockerSource docker = new();

    private (IActorRef Actor, Akka.TestKit.TestProbe Writer, Akka.TestKit.TestProbe Notices) Start(string id)
    {
        var notices = CreateTestProbe();
        Sys.EventStream.Subscribe(notices, typeof(ContainerNotices.StateChanged));
        var writer = CreateTestProbe();
        var peers = Sys.ActorOf(Props.Create<PeerDirectoryActor>());
        return (ChildActorOf(ContainerActor.Props(id, docker, writer, peers)), writer, notices);
    }

    [Fact]
    public void Invalid_labels_are_announced_as_fail_closed_and_counted()
    {
        var before = WhaleWallMetrics.LabelErrors.Value;
        var a = Facts.Container("a", "198.18.128.2", "output:\n  - ips: [nope]\n");
        docker.Containers[a.Id] = a;
        var (actor, _, notices) = Start(a.Id);
        actor.Tell(new ContainerCommands.Refresh("test"));
        var notice = notices.ExpectMsg<ContainerNotices.StateChanged>();
        Assert.Equal(ContainerState.FailClosed, notice.State);
        Assert.Equal("a", notice.Facts!.Name);
        Assert.True(WhaleWallMetrics.LabelErrors.Value > before);
    }

    [Fact]
    public void A_kernel_rejection_is_announced_and_cleared_by_the_next_success()
    {
        var a = Facts.Container("a", "198.18.128.2", "output:\n  - ips: [198.19.0.10]\n");
        docker.Containers[a.Id] = a;
        var (actor, writer, notices) = Start(a.Id);
        actor.Tell(new ContainerCommands.Refresh("test"));
        Assert.Equal(ContainerState.Enforced, notices.ExpectMsg<ContainerNotices.StateChanged>().State);
        var program = writer.ExpectMsg<Program>();
        writer.Reply(new NftWriterEvents.Rejected(a.Id, program.Version, "boom"));
        var rejected = notices.ExpectMsg<ContainerNotices.StateChanged>();
        Assert.Equal(ContainerState.Rejected, rejected.State);
        Assert.Contains(rejected.ReasonsOrEmpty, r => r.Contains("boom"));
        notices.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        // the writer's own retry succeeded: it answers the same version
        writer.Reply(new NftWriterEvents.Applied(a.Id, program.Version));
        Assert.Equal(ContainerState.Enforced, notices.ExpectMsg<ContainerNotices.StateChanged>().State);
    }

    [Fact]
    public void Removal_is_announced_as_gone_and_the_view_forgets_the_container()
    {
        var view = new DaemonView();
        MetricsActor.Start(Sys, view, "metrics-spec");
        var a = Facts.Container("a", "198.18.128.2");
        docker.Containers[a.Id] = a;
        var (actor, writer, notices) = Start(a.Id);
        actor.Tell(new ContainerCommands.Refresh("test"));
        notices.ExpectMsg<ContainerNotices.StateChanged>();
        AwaitCondition(() => view.Current.Containers.ContainsKey(a.Id));
        Assert.Equal(a.Id, view.Current.Owners[System.Net.IPAddress.Parse("198.18.128.2")]);

        docker.Containers.TryRemove(a.Id, out _);
        actor.Tell(new ContainerCommands.Refresh("destroy"));
        Assert.Equal(ContainerState.Gone, notices.FishForMessage<ContainerNotices.StateChanged>(n => n.State == ContainerState.Gone).State);
        AwaitCondition(() => !view.Current.Containers.ContainsKey(a.Id) && view.Current.Owners.IsEmpty);
    }
}
