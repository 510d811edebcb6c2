// asl-validator ships JavaScript only: the part of its API the suite uses.
declare module 'asl-validator' {
  interface AslValidationResult {
    isValid: boolean;
    errors: unknown[];
  }
  export default function validator(definition: unknown): AslValidationResult;
}
