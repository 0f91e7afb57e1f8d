// Svelte compiler options for the dashboard (defaults; runes mode is Svelte 5's default).
export default {};
