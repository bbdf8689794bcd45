namespace WhaleWall.Actors.Containers;

public static class ContainerCommands
{
    /// <summary>Something happened to the container: look at it again. <paramref name="Event"/>
    /// is the Docker event behind it, if any.</summary>
    public sealed record Refresh(string Reason, Docker.DockerEvent? Event = null);

    /// <summary>Start-up: the facts the journal holds for the container; enforced at once,
    /// before Docker is asked.</summary>
    public sealed record Seed(WhaleWall.Firewall.Policy.ContainerFacts Facts);
}

public static class ContainerEvents
{
    /// <summary>The container no longer exists and its rules were removed.</summary>
    public sealed record Gone(string Id);
}
