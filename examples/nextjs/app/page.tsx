import Chat from "./chat";

export default function Home() {
  return (
    <main>
      <h1>Task assistant</h1>
      <Chat />
    </main>
  );
}
