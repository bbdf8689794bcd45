using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Akka.Actor;
using Akka.Configuration;
using WhaleWall.Actors.Hostnames;
using WhaleWall.Actors.Metrics;
using WhaleWall.Actors.State;
using WhaleWall.Actors.Flows;
using WhaleWall.Firewall.Kernel;
using WhaleWall.Firewall.Nft;

namespace WhaleWall.Host;

/// <summary>`whalewall status` and `whalewall flush`. Status shows what the running daemon
/// enforces, from the report it writes (<see cref="DaemonReportFile"/>): each container's state
/// as the daemon holds it, with its reasons, and the daemon's health. Whether the daemon runs
/// comes from its lock (<see cref="DaemonLock"/>); when it does not, the journal's containers
/// are shown as "last known", never as enforced. Flush refuses while the daemon runs, unless
/// forced.</summary>
public static class StateCommands
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <summary>A report older than this, from a daemon that holds its lock, is a daemon that
    /// no longer reports (it writes every <see cref="MetricsActor.ReportHeartbeat"/>).</summary>
    public static readonly TimeSpan ReportStaleAfter = TimeSpan.FromSeconds(15);

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>What status knows of the daemon, from its lock and its report.</summary>
    public sealed record DaemonStatus(bool Running, int? LockPid, JsonObject? Report, TimeSpan? ReportAge)
    {
        /// <summary>The report is this daemon's (same pid as the lock holder) and recent.</summary>
        public bool Reporting => Running && Report is not null && ReportAge <= ReportStaleAfter &&
                                 (LockPid is null || Report["pid"]?.GetValue<int>() == LockPid);

        /// <summary>The report was written by the daemon that runs now (fresh or not).</summary>
        public bool ReportIsCurrent => Running && Report is not null && (LockPid is null || Report["pid"]?.GetValue<int>() == LockPid);

        public static DaemonStatus Read(string dataDir, DateTimeOffset now)
        {
            var running = DaemonLock.IsHeld(dataDir);
            var lockPid = running ? DaemonLock.HolderPid(dataDir) : null;
            var report = DaemonReportFile.Read(Path.Combine(dataDir, DaemonReportFile.FileName));
            TimeSpan? age = report?["written"]?.GetValue<string>() is { } w && DateTimeOffset.TryParse(w, out var written) ? now - written : null;
            return new DaemonStatus(running, lockPid, report, age);
        }

        public JsonObject ToJson() => new()
        {
            ["running"] = Running,
            ["reporting"] = Reporting,
            ["pid"] = ReportIsCurrent ? Report!["pid"]?.DeepClone() : LockPid,
            ["started"] = ReportIsCurrent ? Report!["started"]?.DeepClone() : null,
            ["report_written"] = Report?["written"]?.DeepClone(),
            ["report_age_seconds"] = ReportAge is { } a ? Math.Round(a.TotalSeconds, 1) : null,
            ["healthy"] = Reporting ? Report!["healthy"]?.DeepClone() : null,
            ["problems"] = Reporting ? Report!["problems"]?.DeepClone() : new JsonArray(),
            ["pending"] = Reporting ? Report!["pending"]?.DeepClone() : new JsonArray(),
            ["binding"] = ReportIsCurrent ? Report!["binding"]?.DeepClone() : null,
        };
    }

    public static async Task<int> StatusAsync(Options options, bool json)
    {
        var daemon = DaemonStatus.Read(options.DataDir, DateTimeOffset.UtcNow);
        var snapshot = await WithStoreAsync(options, store =>
            store.Ask<ContainerStoreEvents.Snapshot>(ContainerStoreCommands.GetState.Instance, Timeout));
        var (tableOk, sets, tableError) = ReadTable(options.Table);

        // the daemon's own view when it runs and has reported; otherwise the journal, as last known
        var fromDaemon = daemon.ReportIsCurrent;
        var containers = fromDaemon
            ? daemon.Report!["containers"]!.AsArray().Select(c => c!.DeepClone().AsObject()).ToList()
            : [.. snapshot.State.Containers.Values.OrderBy(c => c.Facts.Name, StringComparer.Ordinal).Select(c => new JsonObject
            {
                ["id"] = c.Facts.Id,
                ["name"] = c.Facts.Name,
                ["state"] = "last_known",
                ["reasons"] = new JsonArray([.. c.Errors.Select(x => (JsonNode)x)]),
                ["addresses"] = new JsonArray([.. c.Facts.Addresses.Select(a => (JsonNode)a.ToString())]),
                ["updated"] = DateTimeOffset.FromUnixTimeMilliseconds(c.UpdatedUnixMs).ToString("O"),
            })];
        var doc = new JsonObject
        {
            ["node"] = options.Node,
            ["state"] = Daemon.StateText(options),
            ["daemon"] = daemon.ToJson(),
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
            ["containers_source"] = fromDaemon ? "daemon" : "journal",
            ["containers"] = new JsonArray([.. containers]),
            // written by the running daemon (hostname addresses are not journalled: they are re-resolved)
            ["hostnames"] = HostnameReportFile.Read(Path.Combine(options.DataDir, HostnameReportFile.FileName)),
        };

        if (json)
        {
            Console.WriteLine(doc.ToJsonString(Indented));
            return 0;
        }
        Console.Write(Text(doc, options, daemon));
        return 0;
    }

    /// <summary>The human form of the status document.</summary>
    public static string Text(JsonObject doc, Options options, DaemonStatus daemon)
    {
        var w = new StringWriter();
        w.WriteLine($"node {options.Node}, state {Daemon.StateText(options)} (event {doc["journal_sequence_nr"]})");
        var d = doc["daemon"]!;
        if (!daemon.Running)
            w.WriteLine($"daemon: NOT running (nothing holds {DaemonLock.PathIn(options.DataDir)}); the kernel keeps the rules of its last run, nobody updates them");
        else if (!daemon.ReportIsCurrent)
            w.WriteLine($"daemon: running (pid {d["pid"]}), no report of its own yet (starting?)");
        else
        {
            var age = daemon.ReportAge?.TotalSeconds ?? 0;
            w.WriteLine($"daemon: running (pid {d["pid"]}, since {d["started"]}), " +
                        (daemon.Reporting
                            ? d["healthy"]?.GetValue<bool>() == true ? "healthy" : "UNHEALTHY:"
                            : $"its last report is {age:F0} s old: it may be stuck"));
            foreach (var p in d["problems"]?.AsArray() ?? []) w.WriteLine($"  - {p}");
            foreach (var p in d["pending"]?.AsArray() ?? []) w.WriteLine($"  note: {p}");
        }
        var table = doc["table"]!;
        var elements = table["elements"]!.AsObject();
        w.WriteLine(table["present"]!.GetValue<bool>()
            ? $"table inet {options.Table}: {elements.Sum(e => e.Value!.GetValue<int>())} elements ({string.Join(", ", elements.Select(s => $"{s.Key} {s.Value}"))})"
            : $"table inet {options.Table}: not present ({table["error"]})");
        var containers = doc["containers"]!.AsArray();
        w.WriteLine(doc["containers_source"]!.GetValue<string>() == "daemon"
            ? $"{containers.Count} containers, as the daemon holds them:"
            : $"{containers.Count} containers last known (from the journal: NOT necessarily what is enforced):");
        foreach (var c in containers)
        {
            var id = c!["id"]!.GetValue<string>();
            var state = c["state"]!.GetValue<string>().Replace('_', '-');
            // audit mode: the policy is evaluated, but nothing is dropped
            if (c["mode"]?.GetValue<string>() == "audit") state += "(AUDIT)";
            w.WriteLine($"  {c["name"],-24} {id[..Math.Min(12, id.Length)]}  {state,-12} " +
                        string.Join(",", c["addresses"]!.AsArray().Select(a => a!.GetValue<string>())));
            foreach (var r in c["reasons"]?.AsArray() ?? []) w.WriteLine($"      {r}");
            foreach (var n in c["networks"]?.AsArray() ?? [])
                if (n?["binding"]?.GetValue<string>() is "bound" or "unbound")
                    w.WriteLine($"      {n["name"]}: {n["binding"]}{(n["port"] is { } port ? $" to port {port} of {n["bridge"]}" : $" on {n["bridge"]} (its port is not known yet: it sends nothing)")}");
            foreach (var l in c["dns_learned"]?.AsArray() ?? [])
                w.WriteLine($"      looked up {l!["name"]} -> {l["address"]} (until {DateTimeOffset.Parse(l["expires"]!.GetValue<string>()):HH:mm:ss})");
        }
        var hostnames = doc["hostnames"]!.AsArray();
        w.WriteLine($"{hostnames.Count} hostnames resolved:");
        foreach (var h in hostnames)
        {
            var addresses = h!["addresses"]!.AsArray().Select(a => $"{a!["address"]} (until {DateTimeOffset.Parse(a["expires"]!.GetValue<string>()):HH:mm:ss})");
            w.WriteLine($"  {h["name"],-32} {string.Join(", ", addresses)}  used by {string.Join(", ", h["containers"]!.AsArray().Select(c => c!.GetValue<string>()))}");
        }
        return w.ToString();
    }

    /// <summary>Removes the table and forgets the node's state. Refused while a daemon holds the
    /// data directory's lock: the table would vanish under it and its containers would run
    /// unfiltered until its next restart.</summary>
    public static async Task<int> FlushAsync(Options options, bool force)
    {
        if (DaemonLock.IsHeld(options.DataDir))
        {
            if (!force)
            {
                Console.Error.WriteLine($"whalewall flush: a whalewall daemon is running on {options.DataDir} (it holds {DaemonLock.PathIn(options.DataDir)}). " +
                                        "Flushing now would delete its table under it and leave every container unfiltered. Stop the daemon first, or use --force.");
                return 1;
            }
            Console.Error.WriteLine("whalewall flush: --force: flushing under a running daemon; its containers are unfiltered until it is restarted");
        }
        using (var nft = new LibNftables())
        {
            var result = nft.Run(NftJson.DeleteTable(options.Table));
            if (!result.Ok)
            {
                Console.Error.WriteLine($"whalewall: cannot remove table inet {options.Table}: {result.Error.Trim()}");
                return 1;
            }
            // the binding table (docs/binding.md); a kernel without the bridge family never had one
            var bridge = nft.Run(WhaleWall.Firewall.Binding.BridgeLayout.DeleteTable(options.Table));
            if (!bridge.Ok && !bridge.Error.Contains("not supported", StringComparison.OrdinalIgnoreCase))
            {
                Console.Error.WriteLine($"whalewall: cannot remove table bridge {options.Table}: {bridge.Error.Trim()}");
                return 1;
            }
            // a start-up probe's table left by a daemon killed in the middle of it (RenewalProbe)
            nft.Run(NftJson.DeleteTable(options.Table + "_renewprobe"));
        }
        // what the DNS proxy had learned goes with the rules: a new daemon starts from nothing
        File.Delete(Path.Combine(options.DataDir, WhaleWall.Actors.State.LearnedFile.FileName));
        var cleared = await WithStoreAsync(options, store =>
            store.Ask<ContainerStoreEvents.Cleared>(ContainerStoreCommands.Clear.Instance, Timeout));
        var flows = await WithStoreAsync(options, FlowRecorderActor.Props(options.Node, open: null), store =>
            store.Ask<FlowEvents.Cleared>(FlowCommands.Clear.Instance, Timeout));
        Console.WriteLine($"removed tables inet and bridge {options.Table}; forgot {cleared.ContainersForgotten} containers of node {options.Node}, " +
                          $"what their DNS lookups had opened and the flows learned for {flows.Owners} containers or services");
        return 0;
    }

    private static Task<T> WithStoreAsync<T>(Options options, Func<IActorRef, Task<T>> body) =>
        WithStoreAsync(options, ContainerStoreActor.Props(options.Node), body);

    /// <summary>Runs <paramref name="body"/> against a journal reader (<paramref name="props"/>) of
    /// the node's state, in an actor system of the CLI's own.</summary>
    internal static async Task<T> WithStoreAsync<T>(Options options, Props props, Func<IActorRef, Task<T>> body)
    {
        var config = ConfigurationFactory.ParseString("akka.loglevel = WARNING\nakka.stdout-loglevel = WARNING")
            .WithFallback(PersistenceConfig.Config(options.State));
        using var system = ActorSystem.Create("whalewall-cli", config);
        try
        {
            var store = system.ActorOf(props, "state");
            return await body(store);
        }
        finally { await system.Terminate(); }
    }

    /// <summary>Element counts per set of WhaleWall's table (a sharded set's shards together), or why it cannot be read.</summary>
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
                {
                    var logical = NftPlacement.Unsharded(name);
                    sets[logical] = sets.GetValueOrDefault(logical) + ((set["elem"] as JsonArray)?.Count ?? 0);
                }
            return (true, sets, null);
        }
        catch (Exception e) { return (false, sets, e.Message); }
    }
}
