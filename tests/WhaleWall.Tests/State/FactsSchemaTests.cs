using System.Collections.Immutable;
using System.Net;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using FsCheck;
using FsCheck.Fluent;
using WhaleWall.Actors.State;
using WhaleWall.Firewall.Policy;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.Actors.State.StoredEvents;

namespace WhaleWall.Tests.State;

/// <summary>Facts are defined once (<see cref="FactsSchema"/>): every property of the records is
/// journalled and compared, a change to any one of them is seen, and generated facts with every
/// field set come back from the journal exactly (checked by reflection, not by the schema).</summary>
public class FactsSchemaTests(ITestOutputHelper output)
{
    public static TheoryData<string> Records => new() { nameof(ContainerFacts), nameof(NetworkAttachment), nameof(PublishedPort), nameof(DockerNetwork) };

    private static (Type Type, IReadOnlyList<string> Properties, IReadOnlyList<string> Keys) Schema(string record) => record switch
    {
        nameof(ContainerFacts) => Of(FactsSchema.Container),
        nameof(NetworkAttachment) => Of(FactsSchema.Attachment),
        nameof(PublishedPort) => Of(FactsSchema.Port),
        nameof(DockerNetwork) => Of(FactsSchema.Network),
        _ => throw new ArgumentException(record),
    };

    private static (Type, IReadOnlyList<string>, IReadOnlyList<string>) Of<T>(JournalShape<T> shape) where T : class =>
        (typeof(T), [.. shape.Fields.Select(f => f.Property)], [.. shape.Fields.Select(f => f.Key)]);

    [Theory]
    [MemberData(nameof(Records))]
    public void Every_property_of_the_record_is_in_the_journal_schema_once(string record)
    {
        var (type, properties, keys) = Schema(record);
        // positional properties, and any other property with a setter (an init-only one added later)
        var stored = Structural.PositionalProperties(type).Select(p => p.Name)
            .Union(type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.SetMethod is not null).Select(p => p.Name))
            .Order().ToList();
        Assert.True(stored.SequenceEqual(properties.Order()),
            $"{type.Name}: properties [{string.Join(", ", stored)}] but the journal schema maps [{string.Join(", ", properties.Order())}]: " +
            "add the new property to FactsSchema (and a .v3 with an upcaster)");
        Assert.Equal(keys.Count, keys.Distinct().Count());
        Assert.Equal(properties.Count, properties.Distinct().Count());
    }

    [Fact]
    public void Changing_any_one_field_is_seen_by_the_comparer_and_survives_the_journal()
    {
        var facts = FactsGen.Facts.Sample(1).Single();
        var checkedProperties = new List<string>();
        foreach (var variant in Variants(facts))
        {
            Assert.False(FactsComparer.Same(facts, variant.Value), $"FactsComparer.Same ignores {variant.Name}");
            Assert.NotNull(Structural.Difference(facts, variant.Value, "facts"));
            var back = RoundTrip(new ContainerRecorded(variant.Value, [], 1)).Facts;
            Assert.True(Structural.Equal(variant.Value, back), $"{variant.Name}: {Structural.Difference(variant.Value, back, "facts")}");
            checkedProperties.Add(variant.Name);
        }
        output.WriteLine(string.Join(", ", checkedProperties));
        var expected = Structural.PositionalProperties(typeof(ContainerFacts)).Select(p => p.Name)
            .Concat(Structural.PositionalProperties(typeof(NetworkAttachment)).Select(p => "Networks[0]." + p.Name))
            .Concat(Structural.PositionalProperties(typeof(PublishedPort)).Select(p => "Ports[0]." + p.Name));
        Assert.Equal(expected.Order(), checkedProperties.Order());

        var network = FactsGen.Network.Sample(1).Single();
        foreach (var (name, changed) in OneChanged(network))
            Assert.False(FactsSchema.NetworkList.Same([network], [changed]), $"networks compare without {name}");
    }

    [Fact]
    public void Fully_populated_generated_facts_round_trip_through_event_and_snapshot()
    {
        var cases = 0;
        var containers = from n in Gen.Choose(1, 6) from all in FactsGen.Facts.ArrayOf(n) select all;
        var networkLists = from n in Gen.Choose(0, 3) from all in FactsGen.Network.ArrayOf(n) select all;
        Prop.ForAll(containers.ToArbitrary(), networkLists.ToArbitrary(), (all, networks) =>
        {
            foreach (var facts in all)
            {
                AssertEveryFieldSet(facts);
                var back = RoundTrip(new ContainerRecorded(facts, ["e1", "ö\n\""], 42));
                if (Structural.Difference(facts, back.Facts, "facts") is { } d) throw new Exception(d);
                if (!FactsComparer.Same(facts, back.Facts)) throw new Exception("FactsComparer.Same says a round trip differs");
                Assert.Equal(["e1", "ö\n\""], back.Errors.ToArray());
                cases++;
            }
            var state = all.Aggregate(ContainerStoreState.Empty, (s, f) => s.Apply(new ContainerRecorded(f, [], 7)))
                .Apply(new NetworksRecorded([.. networks], 8)).Apply(new EventsProcessed(99));
            var snapshot = (ContainerStoreState)RoundTripObject(state);
            Assert.Equal(state.Containers.Keys, snapshot.Containers.Keys);
            foreach (var (id, c) in state.Containers)
                if (Structural.Difference(c, snapshot.Containers[id], id) is { } d) throw new Exception(d);
            if (Structural.Difference(state.Networks, snapshot.Networks, "networks") is { } n) throw new Exception(n);
            Assert.Equal(99, snapshot.LastEventNanos);
            var recorded = (NetworksRecorded)RoundTripObject(new NetworksRecorded([.. networks], 5));
            if (Structural.Difference(networks, recorded.Networks, "networks") is { } r) throw new Exception(r);
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(200).WithQuietOnSuccess(true));
        output.WriteLine($"{cases} generated facts round-tripped");
        Assert.True(cases >= 200);
    }

    /// <summary>The generator's promise: nothing left at its default (Running both ways).</summary>
    private static void AssertEveryFieldSet(ContainerFacts facts)
    {
        void Check(object record)
        {
            var ctor = record.GetType().GetConstructors().OrderByDescending(c => c.GetParameters().Length).First();
            foreach (var p in ctor.GetParameters())
            {
                var value = record.GetType().GetProperty(p.Name!)!.GetValue(record);
                if (p.Name == nameof(ContainerFacts.Running)) continue;
                var isDefault = value is null ||
                                (value is System.Collections.IEnumerable e and not string && !e.Cast<object>().Any()) ||
                                (p.HasDefaultValue && Equals(p.DefaultValue, value)) ||
                                (value.GetType().IsValueType && Equals(Activator.CreateInstance(value.GetType()), value));
                if (isDefault) throw new Exception($"generated {record.GetType().Name}.{p.Name} is at its default");
            }
        }
        Check(facts);
        foreach (var n in facts.Networks) Check(n);
        foreach (var p in facts.Ports) Check(p);
    }

    private static ContainerRecorded RoundTrip(ContainerRecorded e) => (ContainerRecorded)RoundTripObject(e);

    /// <summary>What the journal does: JSON bytes out, bytes in, read under the type's name.</summary>
    private static object RoundTripObject(object o)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(StateSerializer.ToJson(o));
        var manifest = o switch
        {
            ContainerRecorded => StateSerializer.Recorded,
            NetworksRecorded => StateSerializer.Networks,
            ContainerStoreState => StateSerializer.StateSnapshot,
            _ => throw new ArgumentException(o.GetType().Name),
        };
        return StateSerializer.FromJson(JsonNode.Parse(bytes)!.AsObject(), manifest);
    }

    private static IEnumerable<(string Name, ContainerFacts Value)> Variants(ContainerFacts facts)
    {
        foreach (var v in OneChanged(facts)) yield return v;
        foreach (var (name, changed) in OneChanged(facts.Networks[0]))
            yield return ("Networks[0]." + name, facts with { Networks = facts.Networks.SetItem(0, changed) });
        foreach (var (name, changed) in OneChanged(facts.Ports[0]))
            yield return ("Ports[0]." + name, facts with { Ports = facts.Ports.SetItem(0, changed) });
    }

    /// <summary>One copy per positional property with that property (alone) changed.</summary>
    private static IEnumerable<(string Name, T Value)> OneChanged<T>(T record) where T : class
    {
        var ctor = typeof(T).GetConstructors().OrderByDescending(c => c.GetParameters().Length).First();
        var parameters = ctor.GetParameters();
        var args = parameters.Select(p => typeof(T).GetProperty(p.Name!)!.GetValue(record)).ToArray();
        for (var i = 0; i < parameters.Length; i++)
        {
            var changed = (object?[])args.Clone();
            changed[i] = Different(args[i], parameters[i].ParameterType, parameters[i].Name!);
            yield return (parameters[i].Name!, (T)ctor.Invoke(changed));
        }
    }

    private static object? Different(object? value, Type type, string name) => value switch
    {
        string s => s + "x",
        null when type == typeof(string) => "x",
        null when type == typeof(IPAddress) => IPAddress.Parse("198.18.0.1"),
        bool b => !b,
        int n => n == 1 ? 2 : n - 1,
        ushort n => (ushort)(n == 1 ? 2 : n - 1),
        L4Proto p => p == L4Proto.Tcp ? L4Proto.Udp : L4Proto.Tcp,
        IPAddress a => new IPAddress(a.GetAddressBytes().Select((x, i) => i == 0 ? (byte)(x ^ 1) : x).ToArray()),
        ImmutableDictionary<string, string> d => d.SetItem("changed-" + d.Count, "v"),
        ImmutableArray<IPAddress> a => a.RemoveAt(a.Length - 1),
        ImmutableArray<NetworkAttachment> a => a.RemoveAt(a.Length - 1),
        ImmutableArray<PublishedPort> a => a.RemoveAt(a.Length - 1),
        ImmutableArray<AddressRange> a => a.RemoveAt(a.Length - 1),
        BoundPort b => b with { Index = b.Index + 1 },
        _ => throw new InvalidOperationException($"teach this test how to change {name} ({type.Name})"),
    };
}
