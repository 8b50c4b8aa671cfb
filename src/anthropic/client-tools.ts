// Anthropic-defined client tools (bash, the text editor, memory): declared by `type` alone, with no
// input_schema, because Anthropic's models know their inputs. The client still runs them, so an
// upstream that needs a schema can be given the one Anthropic documents and the model can call
// them. Server tools (web_search, web_fetch, code_execution…) run on Anthropic's side: not here.

type JsonSchema = Record<string, unknown>;

const str = (description: string): JsonSchema => ({ type: 'string', description });
const int = (description: string): JsonSchema => ({ type: 'integer', description });
const viewRange: JsonSchema = {
  type: 'array',
  items: { type: 'integer' },
  description: 'For view on a file: [first, last] line numbers, 1-based; last -1 means to the end.',
};

function editorSchema(commands: string[]): JsonSchema {
  return {
    type: 'object',
    properties: {
      command: { type: 'string', enum: commands, description: 'The edit command to run.' },
      path: str('Absolute path of the file or directory.'),
      file_text: str('For create: the content of the new file.'),
      old_str: str('For str_replace: the exact text to replace; it must occur once in the file.'),
      new_str: str('For str_replace: the replacement text. For insert: the text to insert.'),
      insert_line: int('For insert: the line after which the text goes (0 for the top of the file).'),
      view_range: viewRange,
    },
    required: ['command', 'path'],
  };
}

interface ClientTool {
  description: string;
  input_schema: JsonSchema;
}

const BASH: ClientTool = {
  description: 'Run a command in a persistent bash shell and get its output. Set restart to true to start a fresh shell.',
  input_schema: {
    type: 'object',
    properties: { command: str('The bash command to run.'), restart: { type: 'boolean', description: 'Restart the shell instead of running a command.' } },
  },
};

const EDITOR_DESCRIPTION =
  'View, create and edit text files: view shows a file with line numbers (or lists a directory), create writes a new file, str_replace replaces one exact occurrence, insert adds text after a line.';

// The first editor versions (Claude 3.5/3.7) also had undo_edit; 20250429 and later do not.
const EDITOR_WITH_UNDO: ClientTool = {
  description: `${EDITOR_DESCRIPTION} undo_edit reverts the last edit of a file.`,
  input_schema: editorSchema(['view', 'create', 'str_replace', 'insert', 'undo_edit']),
};
const EDITOR: ClientTool = { description: EDITOR_DESCRIPTION, input_schema: editorSchema(['view', 'create', 'str_replace', 'insert']) };

const MEMORY: ClientTool = {
  description:
    'Read and write your persistent memory directory (/memories), which outlives this conversation: view, create, str_replace, insert, delete and rename files there. Check it before starting a task.',
  input_schema: {
    type: 'object',
    properties: {
      command: { type: 'string', enum: ['view', 'create', 'str_replace', 'insert', 'delete', 'rename'], description: 'The memory command to run.' },
      path: str('Path of the file or directory under /memories.'),
      view_range: viewRange,
      file_text: str('For create: the content of the file.'),
      old_str: str('For str_replace: the exact text to replace.'),
      new_str: str('For str_replace: the replacement text.'),
      insert_line: int('For insert: the line after which the text goes.'),
      insert_text: str('For insert: the text to insert.'),
      old_path: str('For rename: the current path.'),
      new_path: str('For rename: the new path.'),
    },
    required: ['command'],
  },
};

const VERSIONED = /^(bash|text_editor|memory)_(\d{8})$/;

/**
 * The description and input schema of an Anthropic-defined client tool `type` (bash_20250124,
 * text_editor_20250728, memory_20250818…; a later date is taken for the latest known version), or
 * null for any other type (server tools, computer use).
 */
export function clientToolSpec(type: unknown): ClientTool | null {
  if (typeof type !== 'string') return null;
  const m = VERSIONED.exec(type);
  if (!m) return null;
  if (m[1] === 'bash') return BASH;
  if (m[1] === 'memory') return MEMORY;
  return m[2]! < '20250429' ? EDITOR_WITH_UNDO : EDITOR;
}

/**
 * An Anthropic-defined client tool as a custom tool (name, description, input_schema), the client's
 * own description kept; null for a tool that has a schema or is not one of them.
 */
export function asCustomTool(t: { name: string; type?: unknown; description?: unknown; input_schema?: unknown }): { name: string; description: string; input_schema: JsonSchema } | null {
  const spec = t.input_schema === undefined ? clientToolSpec(t.type) : null;
  if (!spec) return null;
  return { name: t.name, description: typeof t.description === 'string' && t.description ? t.description : spec.description, input_schema: spec.input_schema };
}
