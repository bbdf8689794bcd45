using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Nodes;
using Akka.Actor;
using Akka.Serialization;
using static WhaleWall.Actors.State.StoredEvents;

namespace WhaleWall.Actors.State;

/// <summary>Journal and snapshot format: JSON with explicit, versioned type names (the
/// manifest) and explicit field names, independent of .NET type and member names. A name
/// written once is read forever: change a shape by adding a new version and an upcaster
/// (<see cref="StateUpcasters"/>) from the old one. Facts are written and read along
/// <see cref="FactsSchema"/>.</summary>
public sealed class StateSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const int Id = 47110;
    public const string Recorded = "container-recorded.v3";
    public const string RecordedV2 = "container-recorded.v2";
    public const string RecordedV1 = "container-recorded.v1";
    public const string Forgotten = "container-forgotten.v1";
    public const string Networks = "docker-networks-recorded.v1";
    public const string Processed = "events-processed.v1";
    public const string Cleared = "state-cleared.v1";
    public const string StateSnapshot = "containers-snapshot.v3";
    public const string StateSnapshotV2 = "containers-snapshot.v2";
    public const string StateSnapshotV1 = "containers-snapshot.v1";
    public const string FlowsRecordedV1 = "flows-recorded.v1";
    public const string FlowsClearedV1 = "flows-cleared.v1";
    public const string FlowsSnapshotV1 = "flows-snapshot.v1";

    public override int Identifier => Id;

    public override string Manifest(object o) => o switch
    {
        ContainerRecorded => Recorded,
        ContainerForgotten => Forgotten,
        NetworksRecorded => Networks,
        EventsProcessed => Processed,
        StateCleared => Cleared,
        ContainerStoreState => StateSnapshot,
        Flows.FlowsRecorded => FlowsRecordedV1,
        Flows.FlowsCleared => FlowsClearedV1,
        Flows.FlowsSnapshot => FlowsSnapshotV1,
        _ => throw new ArgumentException($"{o.GetType()} is not a WhaleWall state type"),
    };

    public override byte[] ToBinary(object o) => JsonSerializer.SerializeToUtf8Bytes(ToJson(o));

    public override object FromBinary(byte[] bytes, string manifest) => FromJson(JsonNode.Parse(bytes)!.AsObject(), manifest);

    public static JsonObject ToJson(object o) => o switch
    {
        ContainerRecorded r => ContainerJson(r.Facts, r.Errors, r.AtUnixMs),
        ContainerForgotten f => new JsonObject { ["id"] = f.Id, ["at"] = f.AtUnixMs },
        NetworksRecorded n => new JsonObject { ["networks"] = FactsSchema.NetworkList.Write(n.Networks), ["at"] = n.AtUnixMs },
        EventsProcessed p => new JsonObject { ["docker_time_ns"] = p.DockerTimeNanos },
        StateCleared c => new JsonObject { ["at"] = c.AtUnixMs },
        Flows.FlowsRecorded r => new JsonObject { ["owners"] = Flows.FlowJson.Write(r.Owners) },
        Flows.FlowsCleared c => new JsonObject { ["at"] = c.AtUnixMs },
        Flows.FlowsSnapshot s => new JsonObject { ["owners"] = Flows.FlowJson.Write(s.Log.Owners.Values) },
        ContainerStoreState s => new JsonObject
        {
            ["docker_time_ns"] = s.LastEventNanos,
            ["containers"] = new JsonArray([.. s.Containers.Values.Select(c => (JsonNode)ContainerJson(c.Facts, c.Errors, c.UpdatedUnixMs))]),
            ["networks"] = FactsSchema.NetworkList.Write(s.Networks),
        },
        _ => throw new ArgumentException($"{o.GetType()} is not a WhaleWall state type"),
    };

    public static object FromJson(JsonObject j, string manifest) => manifest switch
    {
        Recorded => ReadRecorded(j),
        RecordedV2 => FromJson(StateUpcasters.RecordedV2ToV3(j), Recorded),
        RecordedV1 => FromJson(StateUpcasters.RecordedV1ToV2(j), RecordedV2),
        Forgotten => new ContainerForgotten(j["id"]!.GetValue<string>(), j["at"]!.GetValue<long>()),
        Networks => new NetworksRecorded(FactsSchema.NetworkList.Read(j["networks"]), j["at"]!.GetValue<long>()),
        Processed => new EventsProcessed(j["docker_time_ns"]!.GetValue<long>()),
        Cleared => new StateCleared(j["at"]!.GetValue<long>()),
        StateSnapshot => new ContainerStoreState(
            j["containers"]!.AsArray().Select(n => ReadContainer(n!.AsObject()))
                .ToImmutableSortedDictionary(c => c.Facts.Id, c => c, StringComparer.Ordinal),
            j["docker_time_ns"]!.GetValue<long>())
        {
            Networks = FactsSchema.NetworkList.Read(j["networks"]),
        },
        FlowsRecordedV1 => new Flows.FlowsRecorded(Flows.FlowJson.Read(j["owners"])),
        FlowsClearedV1 => new Flows.FlowsCleared(j["at"]!.GetValue<long>()),
        FlowsSnapshotV1 => new Flows.FlowsSnapshot(Flows.FlowJson.Read(j["owners"]).Aggregate(Firewall.Flows.FlowLog.Empty, (log, o) => log.Put(o))),
        StateSnapshotV2 => FromJson(StateUpcasters.SnapshotV2ToV3(j), StateSnapshot),
        StateSnapshotV1 => FromJson(StateUpcasters.SnapshotV1ToV2(j), StateSnapshotV2),
        _ => throw new System.Runtime.Serialization.SerializationException($"unknown WhaleWall state type \"{manifest}\" (written by a newer version?)"),
    };

    private static JsonObject ContainerJson(Firewall.Policy.ContainerFacts facts, ImmutableArray<string> errors, long at) => new()
    {
        ["facts"] = FactsSchema.Container.Write(facts),
        ["errors"] = new JsonArray([.. errors.Select(e => (JsonNode)e)]),
        ["at"] = at,
    };

    private static ContainerRecorded ReadRecorded(JsonObject j)
    {
        var c = ReadContainer(j);
        return new ContainerRecorded(c.Facts, c.Errors, c.UpdatedUnixMs);
    }

    private static StoredContainer ReadContainer(JsonObject j) =>
        new(FactsSchema.Container.Read(j["facts"]!.AsObject()), ReadErrors(j["errors"]), j["at"]!.GetValue<long>());

    private static ImmutableArray<string> ReadErrors(JsonNode? n) =>
        n is null ? [] : [.. n.AsArray().Select(e => e!.GetValue<string>())];
}
