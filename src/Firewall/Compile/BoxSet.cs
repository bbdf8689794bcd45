using System.Collections.Immutable;
using WhaleWall.Firewall.Nft;

namespace WhaleWall.Firewall.Compile;

/// <summary>Turns possibly overlapping boxes (one interval per field) into disjoint boxes
/// covering exactly the same points. Interval sets in the kernel reject overlapping
/// elements, so every owner's elements of one set must be disjoint.</summary>
public static class BoxSet
{
    public static ImmutableArray<ImmutableArray<Field>> Disjoint(IEnumerable<ImmutableArray<Field>> boxes) =>
        [.. Disjoint(boxes.Select(b => (b, 0))).Select(p => p.Box)];

    /// <summary>Like the untagged version; where boxes overlap the earlier one wins, and each
    /// piece keeps the tag of the box it came from.</summary>
    public static ImmutableArray<(ImmutableArray<Field> Box, T Tag)> Disjoint<T>(IEnumerable<(ImmutableArray<Field> Box, T Tag)> boxes)
        where T : notnull
    {
        var result = new List<(ImmutableArray<Field> Box, T Tag)>();
        var seen = new HashSet<string>();
        foreach (var (box, tag) in boxes)
        {
            if (!seen.Add(Describe(box))) continue;
            var pieces = new List<ImmutableArray<Field>> { box };
            foreach (var placed in result)
            {
                if (pieces.Count == 0) break;
                pieces = pieces.SelectMany(p => Subtract(p, placed.Box)).ToList();
            }
            result.AddRange(pieces.Select(p => (p, tag)));
        }
        return [.. result.GroupBy(r => r.Tag).SelectMany(g => Merge(g.Select(r => r.Box)).Select(b => (b, g.Key)))];
    }

    /// <summary>The parts of <paramref name="box"/> outside <paramref name="cut"/>.</summary>
    public static IEnumerable<ImmutableArray<Field>> Subtract(ImmutableArray<Field> box, ImmutableArray<Field> cut)
    {
        if (!Intersects(box, cut)) { yield return box; yield break; }
        var rest = box.ToBuilder();
        for (var i = 0; i < rest.Count; i++)
        {
            var (b, c) = (rest[i], cut[i]);
            if (b.Lo < c.Lo)
            {
                rest[i] = b with { Hi = c.Lo - 1 };
                yield return rest.ToImmutable();
                b = b with { Lo = c.Lo };
            }
            if (b.Hi > c.Hi)
            {
                rest[i] = b with { Lo = c.Hi + 1 };
                yield return rest.ToImmutable();
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

    /// <summary>Joins disjoint boxes that differ in one field only and touch there, so that
    /// splitting overlaps does not leave needless fragments (198.19.0.0-9, .10, .11-255 -> /24).</summary>
    public static ImmutableArray<ImmutableArray<Field>> Merge(IEnumerable<ImmutableArray<Field>> disjoint)
    {
        var boxes = disjoint.ToList();
        if (boxes.Count < 2) return [.. boxes];
        var dims = boxes[0].Length;
        bool changed;
        do
        {
            changed = false;
            for (var d = 0; d < dims; d++)
            {
                var merged = new List<ImmutableArray<Field>>();
                foreach (var group in boxes.GroupBy(b => Without(b, d)))
                {
                    ImmutableArray<Field>? current = null;
                    foreach (var box in group.OrderBy(b => b[d].Lo))
                    {
                        if (current is { } c && c[d].Hi != UInt128.MaxValue && c[d].Hi + 1 == box[d].Lo)
                        {
                            current = c.SetItem(d, c[d] with { Hi = box[d].Hi });
                            changed = true;
                            continue;
                        }
                        if (current is { } done) merged.Add(done);
                        current = box;
                    }
                    merged.Add(current!.Value);
                }
                boxes = merged;
            }
        } while (changed);
        return [.. boxes];
    }

    private static string Without(ImmutableArray<Field> box, int dim) =>
        string.Join("|", box.Select((f, i) => i == dim ? "*" : $"{f.Lo}-{f.Hi}"));

    private static string Describe(ImmutableArray<Field> box) => string.Join("|", box.Select(f => $"{f.Lo}-{f.Hi}"));
}
