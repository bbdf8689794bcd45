using Akka.TestKit.Xunit2;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Docker;
using WhaleWall.Firewall.Policy;
using Xunit;
using static WhaleWall.Actors.Nft.NftWriterCommands;

namespace WhaleWall.Tests.Actors;

public class DockerEventsActorSpecs : TestKit
{
    private readonly FakeDockerSource docker = new();

    [Fact]
    public void Start_up_announces_every_listed_container_then_follows_events_and_reconnects_from_the_last_one()
    {
        var a = Facts.Container("a", "198.18.128.2");
        docker.Containers[a.Id] = a;
        var writer = CreateTestProbe();
        var peers = Sys.ActorOf(Akka.Actor.Props.Create<PeerDirectoryActor>());
        Sys.ActorOf(DockerEventsActor.Props(docker, writer, peers));

        Assert.Equal([a.Id], writer.ExpectMsg<ExpectOwners>().Owners);
        Assert.Equal(a.Id, writer.ExpectMsg<Program>().Fragment.Owner);
        AwaitCondition(() => docker.StreamSinces.Count == 1);

        var b = Facts.Container("b", "198.18.128.3");
        docker.Containers[b.Id] = b;
        docker.Emit(new DockerEvent("container", "start", b.Id, 1_700_000_000_123_456_789));
        var program = writer.ExpectMsg<Program>();
        Assert.Equal(b.Id, program.Fragment.Owner);

        docker.FailStream();
        AwaitCondition(() => docker.StreamSinces.Count == 2, TimeSpan.FromSeconds(5));
        Assert.Equal(1_700_000_000_123_456_789, docker.StreamSinces.Last());
    }

    /// <summary>Container a running, its rules programmed, the event stream followed; the
    /// events actor is /user/events (its container actors /user/events/c-*).</summary>
    private (ContainerFacts A, Akka.TestKit.TestProbe Writer) OneContainerFollowed()
    {
        var a = Facts.Container("a", "198.18.128.2");
        docker.Containers[a.Id] = a;
        var writer = CreateTestProbe();
        var peers = Sys.ActorOf(Akka.Actor.Props.Create<PeerDirectoryActor>());
        Sys.ActorOf(DockerEventsActor.Props(docker, writer, peers), "events");
        writer.ExpectMsg<ExpectOwners>();
        Assert.Equal(a.Id, writer.ExpectMsg<Program>().Fragment.Owner);
        AwaitCondition(() => docker.StreamSinces.Count == 1);
        return (a, writer);
    }

    [Fact]
    public void A_containers_actor_restarted_after_an_internal_error_asks_docker_again_and_programs_its_rules()
    {
        var (a, writer) = OneContainerFollowed();

        Sys.ActorSelection("/user/events/c-*").Tell(Akka.Actor.Kill.Instance); // an exception: its supervisor restarts it
        var again = writer.FishForMessage<Program>(_ => true, TimeSpan.FromSeconds(5));
        Assert.Equal(a.Id, again.Fragment.Owner);
        Assert.Contains(again.Fragment.Elements, e => e.Key == "managed4 198.18.128.2");
    }

    [Fact]
    public void A_containers_actor_that_stopped_is_replaced_and_the_container_keeps_its_rules_and_its_events()
    {
        var (a, writer) = OneContainerFollowed();

        Sys.ActorSelection("/user/events/c-*").Tell(Akka.Actor.PoisonPill.Instance); // as when its supervisor gives up
        Assert.Equal(a.Id, writer.FishForMessage<Program>(_ => true, TimeSpan.FromSeconds(5)).Fragment.Owner);

        // its events reach the fresh actor: a death takes its rules away
        docker.Containers[a.Id] = a with { Running = false, Networks = [] };
        docker.Emit(new DockerEvent("container", "die", a.Id, 1_700_000_000_000_000_000));
        Assert.True(writer.FishForMessage<Program>(p => p.Fragment.Owner == a.Id, TimeSpan.FromSeconds(5)).Fragment.IsEmpty);
    }

    [Fact]
    public void After_a_restart_the_start_up_table_waits_for_every_container_docker_lists_not_only_the_journals()
    {
        // the kernel goes first: a container the kernel held may be missing from the journal
        // (kill -9 before its record was written); the old table must stay until it reports too
        var a = Facts.Container("a", "198.18.128.2");
        var c = Facts.Container("c", "198.18.128.4");
        docker.Containers[a.Id] = a;
        docker.Containers[c.Id] = c;
        var store = CreateTestProbe();
        var writer = CreateTestProbe();
        var peers = Sys.ActorOf(Akka.Actor.Props.Create<PeerDirectoryActor>());
        Sys.ActorOf(DockerEventsActor.Props(docker, writer, peers, store: store));
        store.ExpectMsg<WhaleWall.Actors.State.ContainerStoreCommands.GetState>();
        var journal = WhaleWall.Actors.State.ContainerStoreState.Empty.Apply(new WhaleWall.Actors.State.StoredEvents.ContainerRecorded(a, [], 1));
        store.Reply(new WhaleWall.Actors.State.ContainerStoreEvents.Snapshot(journal, 1));

        var expected = writer.FishForMessage<ExpectOwners>(_ => true, TimeSpan.FromSeconds(5));
        Assert.Equal([a.Id, c.Id], expected.Owners.Order());
    }

    [Fact]
    public void After_a_restart_with_docker_unreachable_the_journal_alone_rebuilds_the_table()
    {
        var a = Facts.Container("a", "198.18.128.2");
        docker.ListFailure = new IOException("docker.sock: connection refused");
        var store = CreateTestProbe();
        var writer = CreateTestProbe();
        var peers = Sys.ActorOf(Akka.Actor.Props.Create<PeerDirectoryActor>());
        Sys.ActorOf(DockerEventsActor.Props(docker, writer, peers, store: store));
        store.ExpectMsg<WhaleWall.Actors.State.ContainerStoreCommands.GetState>();
        store.Reply(new WhaleWall.Actors.State.ContainerStoreEvents.Snapshot(
            WhaleWall.Actors.State.ContainerStoreState.Empty.Apply(new WhaleWall.Actors.State.StoredEvents.ContainerRecorded(a, [], 1)), 1));

        Assert.Equal([a.Id], writer.FishForMessage<ExpectOwners>(_ => true, TimeSpan.FromSeconds(5)).Owners);
    }
    [Fact]
    public void The_delivery_histogram_measures_a_live_event_from_its_own_timestamp_and_leaves_out_what_since_replays()
    {
        // every other test's events carry timestamps from long ago (replays by this rule), so the
        // histogram's observations in this process are this test's
        var delay = WhaleWall.Actors.Metrics.WhaleWallMetrics.DockerEventDelay;
        var writer = CreateTestProbe();
        var peers = Sys.ActorOf(Akka.Actor.Props.Create<PeerDirectoryActor>());
        Sys.ActorOf(DockerEventsActor.Props(docker, writer, peers));
        AwaitCondition(() => docker.StreamSinces.Count == 1);
        var opened = UnixNanos(); // the stream was asked for before this
        var (count, sum) = (delay.Count, delay.Sum);

        var a = Facts.Container("a", "198.18.128.2");
        docker.Containers[a.Id] = a;
        docker.Emit(new DockerEvent("container", "start", a.Id, opened - 60_000_000_000)); // a replay: a minute old
        writer.FishForMessage<Program>(p => p.Fragment.Owner == a.Id);
        Assert.Equal(count, delay.Count);

        Thread.Sleep(1500);
        var sent = UnixNanos() - 1_000_000_000; // stamped a second ago, after the stream opened
        Assert.True(sent > opened);
        var b = Facts.Container("b", "198.18.128.3");
        docker.Containers[b.Id] = b;
        docker.Emit(new DockerEvent("container", "start", b.Id, sent));
        writer.FishForMessage<Program>(p => p.Fragment.Owner == b.Id);
        Assert.Equal(count + 1, delay.Count);
        Assert.InRange(delay.Sum - sum, 1.0, 5.0);
    }

    private static long UnixNanos() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;
}
