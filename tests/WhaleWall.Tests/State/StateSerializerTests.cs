using System.Collections.Immutable;
using System.Net;
using System.Text;
using Akka.TestKit.Xunit2;
using WhaleWall.Actors.State;
using WhaleWall.Firewall.Policy;
using Xunit;
using static WhaleWall.Actors.State.StoredEvents;

namespace WhaleWall.Tests.State;

/// <summary>The journal format: explicit versioned names, round trips, and a fixed v1 text
/// that must keep reading (a later change of the format breaks this test, not users).</summary>
public class StateSerializerTests() : TestKit(PersistenceConfig.Config(new StateOptions("sqlite", Path.GetTempPath(), "unused")))
{
    private StateSerializer Serializer => (StateSerializer)Sys.Serialization.FindSerializerForType(typeof(ContainerRecorded));

    public static ContainerFacts Rich() => new(
        "0123456789abcdef", "web", true,
        ImmutableDictionary<string, string>.Empty.Add("whalewall.enabled", "true").Add("whalewall.rules", "output:\n  - ips: [198.19.0.10]\n"),
        [new NetworkAttachment("front", "net-1", IPAddress.Parse("198.18.128.2"), IPAddress.Parse("2001:db8::2")),
         new NetworkAttachment("back", "net-2", IPAddress.Parse("198.18.129.2"), null)],
        [new PublishedPort(80, L4Proto.Tcp, "0.0.0.0", 8080), new PublishedPort(53, L4Proto.Udp, "127.0.0.1", 5353)]);

    [Fact]
    public void Every_stored_type_has_a_versioned_name_and_round_trips()
    {
        var state = ContainerStoreState.Empty.Apply(new ContainerRecorded(Rich(), ["e1"], 7)).Apply(new EventsProcessed(99));
        object[] values = [new ContainerRecorded(Rich(), ["e1", "e2"], 7), new ContainerForgotten("x", 8), new EventsProcessed(99), new StateCleared(9), state];
        string[] names = [StateSerializer.Recorded, StateSerializer.Forgotten, StateSerializer.Processed, StateSerializer.Cleared, StateSerializer.StateSnapshot];
        Assert.IsType<StateSerializer>(Sys.Serialization.FindSerializerFor(state));
        foreach (var (value, name) in values.Zip(names))
        {
            Assert.Equal(name, Serializer.Manifest(value));
            Assert.EndsWith(".v1", name);
            var back = Serializer.FromBinary(Serializer.ToBinary(value), name);
            Assert.Equal(Normal(value), Normal(back));
        }
    }

    [Fact]
    public void A_v1_event_as_written_by_this_version_reads_back()
    {
        // Frozen text: if this test fails, the format changed; add a .v2 instead of editing .v1.
        const string v1 = """{"facts":{"id":"0123456789abcdef","name":"web","running":true,"labels":{"whalewall.enabled":"true","whalewall.rules":"output:\n  - ips: [198.19.0.10]\n"},"networks":[{"name":"front","id":"net-1","ipv4":"198.18.128.2","ipv6":"2001:db8::2"},{"name":"back","id":"net-2","ipv4":"198.18.129.2","ipv6":null}],"ports":[{"container_port":80,"proto":"tcp","host_ip":"0.0.0.0","host_port":8080},{"container_port":53,"proto":"udp","host_ip":"127.0.0.1","host_port":5353}]},"errors":["e1"],"at":7}""";
        var read = (ContainerRecorded)Serializer.FromBinary(Encoding.UTF8.GetBytes(v1), "container-recorded.v1");
        Assert.True(FactsComparer.Same(Rich(), read.Facts));
        Assert.Equal(["e1"], read.Errors.ToArray());
        Assert.Equal(v1, Encoding.UTF8.GetString(Serializer.ToBinary(new ContainerRecorded(Rich(), ["e1"], 7))));
    }

    [Fact]
    public void An_unknown_type_name_is_an_error_not_a_guess()
    {
        Assert.Throws<System.Runtime.Serialization.SerializationException>(() => Serializer.FromBinary("{}"u8.ToArray(), "container-recorded.v99"));
    }

    /// <summary>Comparable text of a stored value (records compare collections by reference).</summary>
    private static string Normal(object o) => StateSerializer.ToJson(o).ToJsonString();
}
