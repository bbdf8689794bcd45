using System.Text.Json;
using System.Text.Json.Nodes;
using Akka.Actor;
using Akka.Configuration;
using WhaleWall.Actors.Hostnames;
using WhaleWall.Actors.State;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Kernel;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Host;

/// <summary>`whalewall status` and `whalewall flush`: read (or forget) the node's journal from
/// the database and look at WhaleWall's table in the kernel. Status only reads, so it works
/// while the daemon runs; flush is for a stopped daemon.</summary>
public static class StateCommands
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public static async Task<int> StatusAsync(Options options, bool json)
    {
        var snapshot = await WithStoreAsync(options, store =>
            store.Ask<ContainerStoreEvents.Snapshot>(ContainerStoreCommands.GetState.Instance, Timeout));
        var (tableOk, sets, tableError) = ReadTable(options.Table);

        var containers = snapshot.State.Containers.Values.Select(c =>
        {
            var decision = ContainerDecider.Decide(options.Decision, c.Facts).Policy;
            return new JsonObject
            {
                ["id"] = c.Facts.Id,
                ["name"] = c.Facts.Name,
                ["addresses"] = new JsonArray(c.Facts.Addresses.Select(a => (JsonNode)a.ToString()).ToArray()),
                ["decision"] = decision switch
                {
                    PolicyDecision.Enforced => "enforced",
                    PolicyDecision.FailClosed => "drop-all",
                    _ => "unmanaged",
                },
                ["output_rules"] = decision is PolicyDecision.Enforced e ? e.Policy.Output.Length : 0,
                ["errors"] = new JsonArray(c.Errors.Select(x => (JsonNode)x).ToArray()),
                ["updated"] = DateTimeOffset.FromUnixTimeMilliseconds(c.UpdatedUnixMs).ToString("O"),
            };
        }).ToList();
        var doc = new JsonObject
        {
            ["node"] = options.Node,
            ["state"] = Daemon.StateText(options),
            ["journal_sequence_nr"] = snapshot.SequenceNr,
            ["docker_events_until"] = snapshot.State.LastEventNanos == 0 ? null
                : DateTimeOffset.FromUnixTimeMilliseconds(snapshot.State.LastEventNanos / 1_000_000).ToString("O"),
            ["table"] = new JsonObject
            {
                ["name"] = $"inet {options.Table}",
                ["present"] = tableOk,
                ["error"] = tableError,
                ["elements"] = new JsonObject(sets.Select(s => KeyValuePair.Create(s.Key, (JsonNode?)s.Value))),
            },
            ["containers"] = new JsonArray(containers.ToArray<JsonNode>()),
            // written by the running daemon (hostname addresses are not journalled: they are re-resolved)
            ["hostnames"] = HostnameReportFile.Read(Path.Combine(options.DataDir, HostnameReportFile.FileName)),
        };

        if (json)
        {
            Console.WriteLine(doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }
        Console.WriteLine($"node {options.Node}, state {Daemon.StateText(options)} (event {snapshot.SequenceNr})");
        Console.WriteLine(tableOk
            ? $"table inet {options.Table}: {sets.Values.Sum()} elements ({string.Join(", ", sets.Select(s => $"{s.Key} {s.Value}"))})"
            : $"table inet {options.Table}: not present ({tableError})");
        Console.WriteLine($"{containers.Count} containers known:");
        foreach (var c in containers)
        {
            Console.WriteLine($"  {c["name"],-24} {c["id"]!.GetValue<string>()[..Math.Min(12, c["id"]!.GetValue<string>().Length)]}  " +
                              $"{c["decision"],-9} {string.Join(",", c["addresses"]!.AsArray().Select(a => a!.GetValue<string>()))}");
            foreach (var e in c["errors"]!.AsArray()) Console.WriteLine($"      error: {e}");
        }
        var hostnames = doc["hostnames"]!.AsArray();
        Console.WriteLine($"{hostnames.Count} hostnames resolved:");
        foreach (var h in hostnames)
        {
            var addresses = h!["addresses"]!.AsArray().Select(a => $"{a!["address"]} (until {DateTimeOffset.Parse(a["expires"]!.GetValue<string>()):HH:mm:ss})");
            Console.WriteLine($"  {h["name"],-32} {string.Join(", ", addresses)}  used by {string.Join(", ", h["containers"]!.AsArray().Select(c => c!.GetValue<string>()))}");
        }
        return 0;
    }

    public static async Task<int> FlushAsync(Options options)
    {
        using (var nft = new LibNftables())
        {
            var result = nft.Run(NftJson.DeleteTable(options.Table));
            if (!result.Ok)
            {
                Console.Error.WriteLine($"whalewall: cannot remove table inet {options.Table}: {result.Error.Trim()}");
                return 1;
            }
        }
        var cleared = await WithStoreAsync(options, store =>
            store.Ask<ContainerStoreEvents.Cleared>(ContainerStoreCommands.Clear.Instance, Timeout));
        Console.WriteLine($"removed table inet {options.Table}; forgot {cleared.ContainersForgotten} containers of node {options.Node}");
        return 0;
    }

    private static async Task<T> WithStoreAsync<T>(Options options, Func<IActorRef, Task<T>> body)
    {
        var config = ConfigurationFactory.ParseString("akka.loglevel = WARNING\nakka.stdout-loglevel = WARNING")
            .WithFallback(PersistenceConfig.Config(options.State));
        using var system = ActorSystem.Create("whalewall-cli", config);
        try
        {
            var store = system.ActorOf(ContainerStoreActor.Props(options.Node), "state");
            return await body(store);
        }
        finally { await system.Terminate(); }
    }

    /// <summary>Element counts per set of WhaleWall's table, or why it cannot be read.</summary>
    private static (bool Ok, SortedDictionary<string, int> Sets, string? Error) ReadTable(string table)
    {
        var sets = new SortedDictionary<string, int>(StringComparer.Ordinal);
        try
        {
            using var nft = new LibNftables();
            var result = nft.Run(NftJson.ListTable(table));
            if (!result.Ok) return (false, sets, result.Error.Trim());
            foreach (var item in JsonNode.Parse(result.Output)?["nftables"]?.AsArray() ?? [])
                if (item?["set"] is JsonObject set && set["name"]?.GetValue<string>() is { } name)
                    sets[name] = (set["elem"] as JsonArray)?.Count ?? 0;
            return (true, sets, null);
        }
        catch (Exception e) { return (false, sets, e.Message); }
    }
}
