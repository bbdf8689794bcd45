namespace WhaleWall.Firewall.Nft;

/// <summary>The one port to the kernel's nftables: runs a libnftables command buffer
/// (JSON, <c>{"nftables":[...]}</c>) as one atomic transaction.</summary>
public interface INftables
{
    /// <summary>Runs the commands atomically. On success <see cref="NftResult.Output"/> holds
    /// what libnftables printed (JSON for list commands).</summary>
    NftResult Run(string json);

    /// <summary>Validates the commands in the kernel without committing them (libnftables' dry
    /// run: the kernel checks the whole batch, then it is aborted). Used to find which owner a
    /// rejected transaction cannot hold.</summary>
    NftResult Check(string json) => NftResult.Failure("dry run not supported by this INftables");
}

public sealed record NftResult(bool Ok, string Output, string Error)
{
    public static NftResult Success(string output = "") => new(true, output, "");
    public static NftResult Failure(string error) => new(false, "", error);
}
