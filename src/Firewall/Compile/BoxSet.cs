using System.Collections.Immutable;
using WhaleWall.Firewall.Nft;

namespace WhaleWall.Firewall.Compile;

/// <summary>Turns possibly overlapping boxes (one interval per field) into disjoint boxes
/// covering exactly the same points. Interval sets in the kernel reject overlapping
/// elements, so every owner's elements of one set must be disjoint.
/// <para>Overlaps multiply pieces (a box cut by another splits into up to two pieces per
/// field), so the work is bounded by a <see cref="Budget"/>: the pairs of boxes to compare
/// are counted arithmetically before any is compared, and the pieces and the cuts as they
/// are made; past a bound the result is an error, never a long stall.</para></summary>
public static class BoxSet
{
    /// <param name="MaxPieces">Most pieces made while splitting (before merging), counting
    /// those that later cuts remove again.</param>
    /// <param name="MaxPairs">Most pairs of boxes that overlap in the field that separates
    /// them best, i.e. the pairs that must be compared box by box.</param>
    /// <param name="MaxCuts">Most piece-by-box subtractions.</param>
    public sealed record Budget(int MaxPieces, long MaxPairs, long MaxCuts)
    {
        public static readonly Budget Unbounded = new(int.MaxValue, long.MaxValue, long.MaxValue);
    }

    public sealed record Result<T>(ImmutableArray<(ImmutableArray<Field> Box, T Tag)> Pieces, string? Error);

    public static Result<int> Disjoint(IEnumerable<ImmutableArray<Field>> boxes, Budget? budget = null) =>
        Disjoint(boxes.Select(b => (b, 0)), budget);

    /// <summary>Where boxes overlap the earlier one wins, and each piece keeps the tag of the
    /// box it came from; pieces of one tag are then merged where they touch.</summary>
    public static Result<T> Disjoint<T>(IEnumerable<(ImmutableArray<Field> Box, T Tag)> input, Budget? budget = null)
        where T : notnull
    {
        budget ??= Budget.Unbounded;
        var seen = new HashSet<ImmutableArray<Field>>(BoxComparer.Instance);
        var boxes = new List<(ImmutableArray<Field> Box, T Tag)>();
        foreach (var item in input)
            if (seen.Add(item.Box)) boxes.Add(item);
        if (boxes.Count == 0) return new([], null);
        boxes = WithoutCoveredByWide(boxes);

        // for each box, the earlier boxes it intersects: only those can take a part of it
        var earlier = EarlierIntersecting(boxes.Select(b => b.Box).ToList(), budget, out var error);
        if (error is not null) return new([], error);

        var result = new List<(ImmutableArray<Field> Box, T Tag)>();
        long cuts = 0, made = 0;
        for (var j = 0; j < boxes.Count; j++)
        {
            var box = boxes[j].Box;
            // covered by one earlier box: nothing of it is left (the common case of overlaps)
            if (earlier[j].Any(i => Covers(boxes[i].Box, box))) continue;
            var pieces = new List<ImmutableArray<Field>> { box };
            foreach (var i in earlier[j])
            {
                var cut = boxes[i].Box;
                cuts += pieces.Count;
                if (cuts > budget.MaxCuts)
                    return new([], $"overlapping ranges need more than {budget.MaxCuts} cuts to split");
                var next = new List<ImmutableArray<Field>>(pieces.Count);
                foreach (var piece in pieces)
                {
                    if (!Intersects(piece, cut)) next.Add(piece);
                    else if (!Covers(cut, piece))
                    {
                        var before = next.Count;
                        Subtract(piece, cut, next);
                        made += next.Count - before;
                    }
                }
                pieces = next;
                if (made > budget.MaxPieces)
                    return new([], $"overlapping ranges split into more than {budget.MaxPieces} pieces");
                if (pieces.Count == 0) break;
            }
            foreach (var piece in pieces) result.Add((piece, boxes[j].Tag));
        }
        return new([.. result.GroupBy(r => r.Tag).SelectMany(g => Merge(g.Select(r => r.Box)).Select(b => (b, g.Key)))], null);
    }

    /// <summary>True when <paramref name="outer"/> holds every point of <paramref name="inner"/>.</summary>
    public static bool Covers(ImmutableArray<Field> outer, ImmutableArray<Field> inner)
    {
        for (var i = 0; i < outer.Length; i++)
            if (inner[i].Lo < outer[i].Lo || inner[i].Hi > outer[i].Hi) return false;
        return true;
    }

    /// <summary>How many of the widest boxes <see cref="WithoutCoveredByWide"/> tries as covers.</summary>
    private const int WideBoxes = 32;

    /// <summary>Drops the boxes that one of the <see cref="WideBoxes"/> widest earlier boxes
    /// covers (nothing of them would be left): nested ranges under a catch-all then cost
    /// O(n) instead of counting against the pair budget. O(n x 32).</summary>
    private static List<(ImmutableArray<Field> Box, T Tag)> WithoutCoveredByWide<T>(List<(ImmutableArray<Field> Box, T Tag)> boxes)
    {
        if (boxes.Count < 2) return boxes;
        var wide = Enumerable.Range(0, boxes.Count).OrderByDescending(i => Width(boxes[i].Box)).ThenBy(i => i).Take(WideBoxes).ToArray();
        var kept = new List<(ImmutableArray<Field> Box, T Tag)>(boxes.Count);
        for (var j = 0; j < boxes.Count; j++)
        {
            var covered = false;
            foreach (var i in wide)
                if (i < j && Covers(boxes[i].Box, boxes[j].Box)) { covered = true; break; }
            if (!covered) kept.Add(boxes[j]);
        }
        return kept;
    }

    /// <summary>log2 of a box's volume: wider boxes cover more.</summary>
    private static double Width(ImmutableArray<Field> box)
    {
        var bits = 0.0;
        foreach (var f in box) bits += Math.Log2((double)(f.Hi - f.Lo) + 1);
        return bits;
    }

    /// <summary>For each box, the indexes of the earlier boxes that intersect it, in order.
    /// Compares only the pairs that overlap in the field where the fewest pairs do.</summary>
    private static List<int>[] EarlierIntersecting(List<ImmutableArray<Field>> boxes, Budget budget, out string? error)
    {
        error = null;
        var n = boxes.Count;
        var earlier = new List<int>[n];
        for (var j = 0; j < n; j++) earlier[j] = [];
        if (n < 2) return earlier;

        var dims = boxes[0].Length;
        var best = 0;
        var fewest = long.MaxValue;
        for (var d = 0; d < dims; d++)
        {
            var pairs = OverlappingPairs(boxes, d);
            if (pairs < fewest) (best, fewest) = (d, pairs);
        }
        if (fewest > budget.MaxPairs)
        {
            error = $"{fewest} pairs of overlapping ranges to compare, more than {budget.MaxPairs}";
            return earlier;
        }

        var order = Enumerable.Range(0, n).OrderBy(i => boxes[i][best].Lo).ToArray();
        for (var p = 0; p < n; p++)
        {
            var a = order[p];
            for (var q = p + 1; q < n && boxes[order[q]][best].Lo <= boxes[a][best].Hi; q++)
            {
                var b = order[q];
                if (!Intersects(boxes[a], boxes[b])) continue;
                if (a < b) earlier[b].Add(a); else earlier[a].Add(b);
            }
        }
        foreach (var list in earlier) list.Sort();
        return earlier;
    }

    /// <summary>How many pairs of boxes overlap in field <paramref name="d"/>: all pairs less
    /// the disjoint ones (a box lies after every box whose end is below its start). O(n log n).</summary>
    private static long OverlappingPairs(List<ImmutableArray<Field>> boxes, int d)
    {
        var n = boxes.Count;
        var ends = boxes.Select(b => b[d].Hi).Order().ToArray();
        long disjoint = 0;
        foreach (var box in boxes)
        {
            // ends strictly below this box's start
            int lo = 0, hi = n;
            while (lo < hi)
            {
                var mid = (lo + hi) / 2;
                if (ends[mid] < box[d].Lo) lo = mid + 1; else hi = mid;
            }
            disjoint += lo;
        }
        return (long)n * (n - 1) / 2 - disjoint;
    }

    /// <summary>The parts of <paramref name="box"/> outside <paramref name="cut"/>.</summary>
    public static IEnumerable<ImmutableArray<Field>> Subtract(ImmutableArray<Field> box, ImmutableArray<Field> cut)
    {
        var result = new List<ImmutableArray<Field>>();
        Subtract(box, cut, result);
        return result;
    }

    private static void Subtract(ImmutableArray<Field> box, ImmutableArray<Field> cut, List<ImmutableArray<Field>> into)
    {
        if (!Intersects(box, cut)) { into.Add(box); return; }
        var rest = box.ToBuilder();
        for (var i = 0; i < rest.Count; i++)
        {
            var (b, c) = (rest[i], cut[i]);
            if (b.Lo < c.Lo)
            {
                rest[i] = b with { Hi = c.Lo - 1 };
                into.Add(rest.ToImmutable());
                b = b with { Lo = c.Lo };
            }
            if (b.Hi > c.Hi)
            {
                rest[i] = b with { Lo = c.Hi + 1 };
                into.Add(rest.ToImmutable());
                b = b with { Hi = c.Hi };
            }
            rest[i] = b;
        }
        // what remains lies inside `cut`: dropped
    }

    public static bool Intersects(ImmutableArray<Field> a, ImmutableArray<Field> b)
    {
        for (var i = 0; i < a.Length; i++)
            if (a[i].Hi < b[i].Lo || b[i].Hi < a[i].Lo) return false;
        return true;
    }

    public static bool Contains(ImmutableArray<Field> box, ReadOnlySpan<UInt128> point)
    {
        for (var i = 0; i < box.Length; i++)
            if (point[i] < box[i].Lo || point[i] > box[i].Hi) return false;
        return true;
    }

    /// <summary>Most rounds of <see cref="Merge"/>; merging only tidies (the boxes are already
    /// disjoint and cover the same points), so a bound keeps its time bounded without harm.</summary>
    private const int MaxMergeRounds = 4;

    /// <summary>Joins disjoint boxes that differ in one field only and touch there, so that
    /// splitting overlaps does not leave needless fragments (198.19.0.0-9, .10, .11-255 -> /24).
    /// Each round sorts once per field: O(rounds x fields x n log n).</summary>
    public static ImmutableArray<ImmutableArray<Field>> Merge(IEnumerable<ImmutableArray<Field>> disjoint)
    {
        var boxes = disjoint.ToList();
        if (boxes.Count < 2) return [.. boxes];
        var dims = boxes[0].Length;
        var changed = true;
        for (var round = 0; changed && round < MaxMergeRounds; round++)
        {
            changed = false;
            for (var d = 0; d < dims; d++)
            {
                boxes.Sort(new AlongComparer(d));
                var merged = new List<ImmutableArray<Field>>(boxes.Count);
                var current = boxes[0];
                for (var k = 1; k < boxes.Count; k++)
                {
                    var box = boxes[k];
                    if (AlongComparer.SameElsewhere(current, box, d) && current[d].Hi != UInt128.MaxValue && current[d].Hi + 1 == box[d].Lo)
                    {
                        current = current.SetItem(d, current[d] with { Hi = box[d].Hi });
                        changed = true;
                        continue;
                    }
                    merged.Add(current);
                    current = box;
                }
                merged.Add(current);
                boxes = merged;
            }
        }
        return [.. boxes];
    }

    /// <summary>Orders boxes by every field but <c>d</c>, then by <c>d</c>'s start: boxes that
    /// differ only in field <c>d</c> end up next to each other, in order along it.</summary>
    private sealed class AlongComparer(int d) : IComparer<ImmutableArray<Field>>
    {
        public int Compare(ImmutableArray<Field> a, ImmutableArray<Field> b)
        {
            for (var i = 0; i < a.Length; i++)
            {
                if (i == d) continue;
                var c = a[i].Lo.CompareTo(b[i].Lo);
                if (c != 0) return c;
                c = a[i].Hi.CompareTo(b[i].Hi);
                if (c != 0) return c;
            }
            return a[d].Lo.CompareTo(b[d].Lo);
        }

        public static bool SameElsewhere(ImmutableArray<Field> a, ImmutableArray<Field> b, int d)
        {
            for (var i = 0; i < a.Length; i++)
                if (i != d && (a[i].Lo != b[i].Lo || a[i].Hi != b[i].Hi)) return false;
            return true;
        }
    }

    private sealed class BoxComparer : IEqualityComparer<ImmutableArray<Field>>
    {
        public static readonly BoxComparer Instance = new();

        public bool Equals(ImmutableArray<Field> a, ImmutableArray<Field> b) => a.AsSpan().SequenceEqual(b.AsSpan());

        public int GetHashCode(ImmutableArray<Field> box)
        {
            var hash = new HashCode();
            foreach (var field in box) hash.Add(field);
            return hash.ToHashCode();
        }
    }
}
