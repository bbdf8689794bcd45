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
}
