using System.Collections.Immutable;
using WhaleWall.Firewall.Binding;
using WhaleWall.Firewall.Nft;

namespace WhaleWall.Actors.Nft;

/// <summary>Builds WhaleWall's whole table in one transaction from every owner's fragment. When
/// the kernel refuses that transaction (a queue the kernel cannot do, ...), it finds the owners the kernel cannot hold with dry runs —
/// halves of the suspects are checked until each refused owner stands alone — and commits one
/// table in which those owners are drop-all and every other owner is intact. There is never a
/// moment in which the good owners are drop-all because of a bad one. Owners refused for reasons
/// known beforehand (a chain name collision, a `verdict.chain` the table does not have) are
/// drop-all from the first transaction, without dry runs.</summary>
/// With <paramref name="bridge"/>, the bridge-family table of the same name (binding, docs/binding.md)
/// is rebuilt in the same transaction.
internal sealed class TableBuilder(INftables nft, string table, bool logDrops, bool bridge, Func<string, string, int, NftResult> transaction)
{
    /// <param name="Refused">Owner -> the kernel's error, for owners put in as drop-all.</param>
    public sealed record Outcome(bool Ok, KernelState State, IReadOnlyDictionary<string, string> Refused, string? Error, int DryRuns)
    {
        /// <summary>Every element of <see cref="State"/> (what the table was built with).</summary>
        public ImmutableArray<Element> Elements { get; init; } = [];
    }

    public Outcome Build(IReadOnlyList<Fragment> fragments, DateTimeOffset now)
    {
        // the raw-keyed sets have no JSON form in libnftables 1.0.6: declared first, in nft syntax
        if (bridge && nft.Run(BridgeLayout.RawSetDeclarations(table)) is { Ok: false } declared)
            return new(false, KernelState.Empty, new Dictionary<string, string>(), "bridge table: " + declared.Error.Trim(), 0);
        var chains = TableChains();
        var existing = chains.Where(NftListing.IsRuleChain).ToList();
        // refusals known without the kernel: set aside before the first transaction, so that
        // dry runs are left for errors that cannot be predicted
        var collisions = ChainCollisions.Find(fragments);
        foreach (var (owner, reason) in MissingTargets(fragments, chains.ToHashSet(StringComparer.Ordinal), table))
            collisions.TryAdd(owner, reason);
        var wanted = fragments.Select(f => collisions.ContainsKey(f.Owner) ? DropAll(f) : f).ToList();

        var (first, firstPlan) = Commit(wanted, existing, now);
        if (first.Ok) return Built(firstPlan, collisions, 0);

        // Which owners? Everyone drop-all must pass, else the problem is not an owner's.
        var dryRuns = 0;
        NftResult Check(IReadOnlySet<string> full)
        {
            dryRuns++;
            var set = wanted.Select(f => full.Contains(f.Owner) ? f : DropAll(f)).ToList();
            return nft.Check(Json(set, existing, now, out _));
        }

        var refused = new Dictionary<string, string>(collisions);
        if (!Check(new HashSet<string>()).Ok)
            return Fallback(wanted, now, first.Error, refused, dryRuns);

        var good = new HashSet<string>();
        var suspects = wanted.Where(f => f.Elements.Any(e => !NftSets.KeptWhenFailClosed(e.Set)) || !f.ChainsOrEmpty.IsEmpty)
            .Select(f => f.Owner).ToList();
        void Process(List<string> group)
        {
            if (group.Count == 0) return;
            var result = Check(new HashSet<string>(good.Concat(group)));
            if (result.Ok) { good.UnionWith(group); return; }
            if (group.Count == 1) { refused[group[0]] = result.Error.Trim(); return; }
            var half = group.Count / 2;
            Process(group[..half]);
            Process(group[half..]);
        }
        Process(suspects);

        var final = wanted.Select(f => refused.ContainsKey(f.Owner) ? DropAll(f) : f).ToList();
        var (committed, plan) = Commit(final, existing, now);
        return committed.Ok
            ? Built(plan, refused, dryRuns)
            : Fallback(wanted, now, committed.Error, refused, dryRuns);
    }

    /// <summary>Nothing but the owners' addresses under drop-all; if even that cannot go into the
    /// existing table (an incompatible older layout), the table is replaced whole, still in one
    /// transaction.</summary>
    private Outcome Fallback(List<Fragment> wanted, DateTimeOffset now, string error, Dictionary<string, string> refused, int dryRuns)
    {
        var bare = wanted.Select(DropAll).ToList();
        foreach (var f in wanted.Where(f => !SameElements(f, DropAll(f)))) refused.TryAdd(f.Owner, error.Trim());
        var (committed, barePlan) = Commit(bare, ExistingRuleChains(), now);
        if (committed.Ok) return Built(barePlan, refused, dryRuns);
        var plan = KernelState.Empty.Replace(bare, now);
        var replaced = transaction("startup", NftJson.ReplaceTable(table, plan.Adds, logDrops,
            bridge ? BridgeLayout.FullTableCommands(table, plan.After.BridgeReferences.Keys) : null), plan.After.References.Count);
        return replaced.Ok
            ? Built(plan, refused, dryRuns)
            : new(false, KernelState.Empty, refused, replaced.Error.Trim(), dryRuns);
    }

    private static Outcome Built(KernelState.Plan plan, IReadOnlyDictionary<string, string> refused, int dryRuns) =>
        new(true, plan.After, refused, null, dryRuns) { Elements = plan.Adds };

    /// <summary>Plans the table from nothing and commits it.</summary>
    private (NftResult Result, KernelState.Plan Plan) Commit(List<Fragment> fragments, IReadOnlyList<string> existing, DateTimeOffset now)
    {
        var json = Json(fragments, existing, now, out var plan);
        var result = transaction("startup", json, plan.After.References.Count + plan.After.ChainReferences.Count);
        return (result, plan);
    }

    private string Json(IReadOnlyList<Fragment> fragments, IReadOnlyList<string> existing, DateTimeOffset now, out KernelState.Plan plan)
    {
        plan = KernelState.Empty.Replace(fragments, now);
        // planned from nothing, so the adds are every element and chain of the state after
        // (enumerating that state's immutable dictionaries cost ~10% of the render)
        return NftJson.FullTable(table, plan.Adds, plan.ChainAdds, existing, now: now, logDrops: logDrops,
            bridge: bridge ? BridgeLayout.FullTableCommands(table, plan.After.BridgeReferences.Keys) : null);
    }

    /// <summary>WhaleWall's per-rule chains left in the kernel by an earlier run.</summary>
    private IReadOnlyList<string> ExistingRuleChains() => TableChains().Where(NftListing.IsRuleChain).ToList();

    /// <summary>Every chain of the table now, WhaleWall's and the operator's; none when it cannot be
    /// listed (no table yet: no operator chain either).</summary>
    private IReadOnlyList<string> TableChains()
    {
        var listing = nft.Run(NftJson.ListTable(table));
        return listing.Ok ? NftListing.ChainNames(listing.Output).ToList() : [];
    }

    /// <summary>Owners whose rule chains jump to a chain the table does not have (a `verdict.chain`
    /// the operator has not created): the kernel would refuse them. Owner -> the reason. Pure.</summary>
    public static Dictionary<string, string> MissingTargets(IEnumerable<Fragment> fragments, IReadOnlySet<string> chains, string table)
    {
        var missing = new Dictionary<string, string>();
        foreach (var f in fragments)
            if (f.ChainsOrEmpty.Select(c => c.Jump).OfType<string>().FirstOrDefault(t => !chains.Contains(t)) is { } target)
                missing[f.Owner] = $"verdict chain `{target}` does not exist in table inet {table}; create it (nft add chain inet {table} {target}) or change the label";
        return missing;
    }

    /// <summary>What stays of an owner whose policy cannot be applied: its addresses under drop-all,
    /// its binding (identity, not policy) as it was.</summary>
    public static Fragment DropAll(Fragment f) =>
        new(f.Owner, [.. f.Elements.Where(e => NftSets.KeptWhenFailClosed(e.Set))], [], f.Bridge);

    private static bool SameElements(Fragment a, Fragment b) =>
        a.Elements.Length == b.Elements.Length && a.ChainsOrEmpty.Length == b.ChainsOrEmpty.Length;
}
